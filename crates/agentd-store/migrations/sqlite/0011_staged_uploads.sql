-- agentd schema, step 9: a file uploaded through a link can wait to be imported.
--
-- The Autessa adapter's upload links take the CSV by PUT and keep it here until the client
-- asks for it to be inserted (`batch-insert`, with its delimiter); the native upload route
-- still imports at once. The row, file included, goes when the link is used or expires.

ALTER TABLE table_upload_links ADD COLUMN staged BLOB;
