-- Every instance keeps the live sessions it has seen in memory and learns of ended ones (logout,
-- refresh) by asking for the sessions revoked since its last look, every moment: this index keeps
-- that question cheap however many sessions there are.
CREATE INDEX mp_sessions_revoked ON mp_sessions (revoked_at) WHERE revoked_at IS NOT NULL;
