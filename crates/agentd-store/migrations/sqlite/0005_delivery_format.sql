-- agentd schema, step 5: the webhook format a delivery was rendered in (an adapter's format
-- adds its own headers when the delivery is sent).

ALTER TABLE webhook_deliveries ADD COLUMN format TEXT NOT NULL DEFAULT 'native';
