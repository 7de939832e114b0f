-- Foundation: the pipeline's own schema. Later migrations add model_registry and friends.
CREATE SCHEMA IF NOT EXISTS pria;
COMMENT ON SCHEMA pria IS 'pria-ml learning loop: model registry, audit events, run bookkeeping';
