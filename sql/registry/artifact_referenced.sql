-- Whether any registry row points at %(artifact_uri)s (such an object is never replaced).
SELECT EXISTS (SELECT 1 FROM pria.model_registry WHERE artifact_uri = %(artifact_uri)s)
