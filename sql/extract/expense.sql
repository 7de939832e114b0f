-- expense inside its retention window (180 days up to the extraction date, spec section 2).
-- user_id and workspace_id are not selected; the text columns are PII-pseudonymised in Python.
SELECT expense_id, description, merchant, notes, category_id, created_at
FROM expense
WHERE created_at >= %(expense_cutoff)s
  AND created_at < %(until)s
