-- agentd schema: conversations created before their first message (the Autessa API's
-- execute-create; native POST /v1/conversations). `opening` is the spec every turn starts
-- from (JSON SessionSpec with an empty goal: mode, model, bounds, the pinned agent version),
-- resolved when the conversation was created; its first message becomes a session whose id
-- is the conversation's. NULL for a conversation named by a session it began with.

ALTER TABLE conversations ADD COLUMN opening TEXT;
