-- Where a rollback would go now (%(to)s: a former prod, or NULL for the one below the current
-- prod on the prod stack), why, whether it is archived, and how deep the prod stack is.
-- Columns in the order of registry.RollbackTarget. Raises what pria.rollback raises.
SELECT current_prod, target, why, archived, depth
  FROM pria.rollback_target(%(to)s::uuid)
