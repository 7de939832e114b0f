-- Merchants of the expense window that more than one workspace uses: businesses, not people.
-- The PII detectors leave these names alone (a merchant is what the model learns a category
-- from); a name that only one workspace typed into the merchant field gets no such protection.
-- workspace_id is counted here and never selected.
SELECT merchant
FROM expense
WHERE created_at >= %(expense_cutoff)s
  AND created_at < %(until)s
  AND merchant IS NOT NULL
GROUP BY merchant
HAVING count(DISTINCT workspace_id) >= %(merchant_min_workspaces)s
ORDER BY merchant
