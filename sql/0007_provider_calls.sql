-- The calls made against each provider budget (a Cloudflare token, the Namecheap key, a Google account), shared by
-- every process: the client-side rate limiter counts here, so runs in parallel or back to back, and the sensors,
-- together stay under a provider's published limit. Rows older than the budget's window are deleted as calls come in.
-- UNLOGGED: nothing here needs to survive a crash.
CREATE UNLOGGED TABLE provider_calls (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    budget    text NOT NULL,
    called_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX provider_calls_budget_called_at_idx ON provider_calls (budget, called_at);
