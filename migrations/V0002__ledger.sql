-- The double-entry ledger (DESIGN §4): accounts with posted and pending totals, immutable
-- transfers that record the balances they produced, two-phase holds, and idempotency records.
-- Every invariant is enforced here as well as in policy/ledger_engine.cc.

CREATE SEQUENCE ledger_account_id_seq;
CREATE SEQUENCE ledger_transfer_id_seq;

CREATE TABLE ledger_accounts (
  id                  bigint PRIMARY KEY DEFAULT nextval('ledger_account_id_seq'),
  -- Sharding keys: every account belongs to one program of one issuer.
  program_id          text NOT NULL CONSTRAINT accounts_program_id_nonempty CHECK (program_id <> ''),
  issuer_id           text NOT NULL CONSTRAINT accounts_issuer_id_nonempty CHECK (issuer_id <> ''),
  kind                text NOT NULL CONSTRAINT accounts_kind_known CHECK (
                        kind IN ('TREASURY', 'BUDGET', 'WALLET', 'RECEIVABLE', 'PAID', 'LAPSED',
                                 'PAYABLE')),
  -- Whose account: '' for program accounts, the USCC for wallets and payables, the datacenter
  -- id for receivable/paid.
  owner               text NOT NULL DEFAULT '',
  -- Bit 0: no overdraft (debits, posted and pending, never exceed posted credits).
  flags               integer NOT NULL DEFAULT 0 CONSTRAINT accounts_flags_known CHECK (flags & ~1 = 0),
  debits_pending_fen  bigint NOT NULL DEFAULT 0 CONSTRAINT accounts_debits_pending_nonnegative CHECK (debits_pending_fen >= 0),
  debits_posted_fen   bigint NOT NULL DEFAULT 0 CONSTRAINT accounts_debits_posted_nonnegative CHECK (debits_posted_fen >= 0),
  credits_pending_fen bigint NOT NULL DEFAULT 0 CONSTRAINT accounts_credits_pending_nonnegative CHECK (credits_pending_fen >= 0),
  credits_posted_fen  bigint NOT NULL DEFAULT 0 CONSTRAINT accounts_credits_posted_nonnegative CHECK (credits_posted_fen >= 0),
  created_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT accounts_no_overdraft CHECK (
    flags & 1 = 0 OR credits_posted_fen - debits_posted_fen - debits_pending_fen >= 0),
  CONSTRAINT accounts_one_per_kind_and_owner UNIQUE (program_id, kind, owner)
);
CREATE INDEX ledger_accounts_owner ON ledger_accounts (owner, program_id);
CREATE INDEX ledger_accounts_issuer ON ledger_accounts (issuer_id);

-- Kinds (policy::TransferKind): 1 FUND, 2 AWARD, 3 HOLD, 4 POST, 5 VOID, 6 EXPIRE, 7 PAYOUT,
-- 8 CLAWBACK, 9 REVERSAL.
CREATE TABLE ledger_transfers (
  id                 bigint PRIMARY KEY,
  program_id         text NOT NULL,
  kind               smallint NOT NULL CONSTRAINT transfers_kind_known CHECK (kind BETWEEN 1 AND 9),
  debit_account_id   bigint NOT NULL REFERENCES ledger_accounts (id),
  credit_account_id  bigint NOT NULL REFERENCES ledger_accounts (id),
  -- HOLD: held; POST: posted; VOID / EXPIRE of a hold: released; others: moved.
  amount_fen         bigint NOT NULL CONSTRAINT transfers_amount_positive CHECK (amount_fen > 0),
  -- POST that closed its hold: the remainder released with it.
  released_fen       bigint NOT NULL DEFAULT 0 CONSTRAINT transfers_released_nonnegative CHECK (released_fen >= 0),
  pending_id         bigint REFERENCES ledger_transfers (id),
  expires_at         timestamptz,
  -- The idempotency key that created this transfer (scope, request id).
  request_scope      text NOT NULL,
  request_id         text NOT NULL,
  metadata           jsonb NOT NULL DEFAULT '{}',
  created_at         timestamptz NOT NULL,
  -- Balances of both accounts right after this transfer: statements and balances as of any
  -- time are one indexed query.
  debit_debits_pending_fen   bigint NOT NULL,
  debit_debits_posted_fen    bigint NOT NULL,
  debit_credits_pending_fen  bigint NOT NULL,
  debit_credits_posted_fen   bigint NOT NULL,
  credit_debits_pending_fen  bigint NOT NULL,
  credit_debits_posted_fen   bigint NOT NULL,
  credit_credits_pending_fen bigint NOT NULL,
  credit_credits_posted_fen  bigint NOT NULL,
  CONSTRAINT transfers_distinct_accounts CHECK (debit_account_id <> credit_account_id),
  CONSTRAINT transfers_pending_id_matches_kind CHECK (
    (kind IN (4, 5) AND pending_id IS NOT NULL) OR
    (kind IN (1, 2, 3, 7, 8, 9) AND pending_id IS NULL) OR kind = 6),
  CONSTRAINT transfers_released_only_on_post CHECK (released_fen = 0 OR kind = 4),
  CONSTRAINT transfers_expiry_only_on_hold CHECK (expires_at IS NULL OR kind = 3),
  CONSTRAINT transfers_request_once UNIQUE (request_scope, request_id)
);
CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account_id, id);
CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account_id, id);
CREATE INDEX ledger_transfers_pending ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;

CREATE TRIGGER ledger_transfers_append_only
  BEFORE UPDATE OR DELETE ON ledger_transfers
  FOR EACH ROW EXECUTE FUNCTION vch_forbid_mutation();
CREATE TRIGGER ledger_transfers_no_truncate
  BEFORE TRUNCATE ON ledger_transfers
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();

-- The state of each two-phase hold: how much of it was posted and released so far.
CREATE TABLE ledger_holds (
  transfer_id        bigint PRIMARY KEY REFERENCES ledger_transfers (id),
  program_id         text NOT NULL,
  debit_account_id   bigint NOT NULL REFERENCES ledger_accounts (id),
  credit_account_id  bigint NOT NULL REFERENCES ledger_accounts (id),
  amount_fen         bigint NOT NULL CONSTRAINT holds_amount_positive CHECK (amount_fen > 0),
  posted_fen         bigint NOT NULL DEFAULT 0 CONSTRAINT holds_posted_nonnegative CHECK (posted_fen >= 0),
  released_fen       bigint NOT NULL DEFAULT 0 CONSTRAINT holds_released_nonnegative CHECK (released_fen >= 0),
  expires_at         timestamptz,
  resolved           boolean NOT NULL DEFAULT false,
  -- Invariant 3: a hold is posted or voided at most once in total.
  CONSTRAINT holds_resolved_at_most_once CHECK (posted_fen + released_fen <= amount_fen),
  CONSTRAINT holds_resolved_iff_exhausted CHECK (resolved = (posted_fen + released_fen = amount_fen))
);
CREATE INDEX ledger_holds_open_by_expiry ON ledger_holds (expires_at)
  WHERE NOT resolved AND expires_at IS NOT NULL;

-- Holds only move forward: nothing posted or released is ever taken back, a resolved hold never
-- changes again, and hold rows are never deleted.
CREATE FUNCTION ledger_holds_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'APPEND_ONLY: ledger_holds rows are never deleted' USING ERRCODE = 'VC001';
  END IF;
  IF OLD.resolved THEN
    RAISE EXCEPTION 'HOLD_ALREADY_RESOLVED: hold % is resolved', OLD.transfer_id
      USING ERRCODE = 'VC002';
  END IF;
  IF NEW.transfer_id <> OLD.transfer_id OR NEW.program_id <> OLD.program_id
     OR NEW.posted_fen < OLD.posted_fen OR NEW.released_fen < OLD.released_fen
     OR NEW.amount_fen <> OLD.amount_fen OR NEW.debit_account_id <> OLD.debit_account_id
     OR NEW.credit_account_id <> OLD.credit_account_id
     OR NEW.expires_at IS DISTINCT FROM OLD.expires_at THEN
    RAISE EXCEPTION 'HOLD_IMMUTABLE: hold % may only post or release more', OLD.transfer_id
      USING ERRCODE = 'VC003';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER ledger_holds_forward_only
  BEFORE UPDATE OR DELETE ON ledger_holds
  FOR EACH ROW EXECUTE FUNCTION ledger_holds_forward_only();
CREATE TRIGGER ledger_holds_no_truncate
  BEFORE TRUNCATE ON ledger_holds
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();

-- AIP-155 idempotency: a key, the hash of the request it was first used with, and the stored
-- response, committed in the same transaction as the effect.
CREATE TABLE idempotency_keys (
  scope         text NOT NULL,
  request_id    text NOT NULL CONSTRAINT idempotency_request_id_valid CHECK (
                  request_id <> '' AND length(request_id) <= 128),
  request_hash  text NOT NULL,
  response      bytea NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, request_id)
);
CREATE TRIGGER idempotency_keys_append_only
  BEFORE UPDATE OR DELETE ON idempotency_keys
  FOR EACH ROW EXECUTE FUNCTION vch_forbid_mutation();
CREATE TRIGGER idempotency_keys_no_truncate
  BEFORE TRUNCATE ON idempotency_keys
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();
