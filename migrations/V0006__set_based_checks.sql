-- The hot paths' integrity checks, once per statement instead of once per row (DESIGN §4: every
-- invariant in the database). RequestCompute and ReportUsage write their rows in batches of up
-- to a few hundred; a foreign-key check is a locking SPI query per row and key, and a PL/pgSQL
-- row trigger a function call per row: together about half of the database's work per
-- redemption. Each check below reads the statement's new rows (a transition table) in one query
-- and checks at least what the foreign keys and the row trigger it replaces checked, usually
-- more (the program of every account of a transfer, the kind and amount of every hold's
-- transfer). A check raises SQLSTATE class VC with "REASON: text", as every trigger here does.
--
-- Each check looks its few rows up by key. PL/pgSQL keeps a query's plan for the session, so
-- a plan made while a table was small (a sequential scan, a hash join, or an EXISTS turned into
-- a hashed sub-plan over all of it, is cheaper than a handful of index probes on a few
-- thousand rows) would stay while the table grows to millions, costing a pass over the whole
-- table per statement. So each lookup is a LATERAL subquery by primary key alone (which the
-- planner can neither turn into a hashed sub-plan nor serve from another index: probing, say,
-- a hold's transfers by pending_id and filtering would grow with the hold's history), the
-- columns are compared outside it, and the check functions run with sequential scans, hash
-- and merge joins disabled: one key probe per new row and table, whatever the statistics said
-- when the plan was made.
--
-- A foreign key also keeps its parent row from being deleted or re-keyed. Each parent whose
-- foreign key goes is therefore made undeletable and its key immutable here (programs, ledger
-- transfers and holds were already).

-- 1. The time helpers are STABLE (timestamptz arithmetic is), so that the planner inlines them
-- instead of calling a SQL function per value.
ALTER FUNCTION vch_ts(bigint) STABLE;
ALTER FUNCTION vch_us(timestamptz) STABLE;

-- 2. Parents: never deleted, keys never changed.
CREATE FUNCTION vch_forbid_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ROW_UNDELETABLE: rows of % are never deleted; % is refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'VC004';
END
$$;
CREATE FUNCTION vch_forbid_key_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'KEY_IMMUTABLE: the key of a row of % never changes', TG_TABLE_NAME
    USING ERRCODE = 'VC005';
END
$$;

CREATE TRIGGER issuers_no_delete BEFORE DELETE OR TRUNCATE ON issuers
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_delete();
CREATE TRIGGER issuers_key_immutable BEFORE UPDATE OF id ON issuers
  FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id) EXECUTE FUNCTION vch_forbid_key_change();
CREATE TRIGGER enterprises_no_delete BEFORE DELETE OR TRUNCATE ON enterprises
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_delete();
CREATE TRIGGER enterprises_key_immutable BEFORE UPDATE OF uscc ON enterprises
  FOR EACH ROW WHEN (NEW.uscc IS DISTINCT FROM OLD.uscc) EXECUTE FUNCTION vch_forbid_key_change();
CREATE TRIGGER gpu_pools_no_delete BEFORE DELETE OR TRUNCATE ON gpu_pools
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_delete();
CREATE TRIGGER gpu_pools_key_immutable BEFORE UPDATE OF datacenter_id, id ON gpu_pools
  FOR EACH ROW WHEN (NEW.datacenter_id IS DISTINCT FROM OLD.datacenter_id OR NEW.id IS DISTINCT FROM OLD.id)
  EXECUTE FUNCTION vch_forbid_key_change();
CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE OR TRUNCATE ON ledger_accounts
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_delete();
CREATE TRIGGER ledger_accounts_key_immutable BEFORE UPDATE OF id, program_id ON ledger_accounts
  FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id OR NEW.program_id IS DISTINCT FROM OLD.program_id)
  EXECUTE FUNCTION vch_forbid_key_change();

-- A capacity hold keeps its id too (redemptions name it).
CREATE OR REPLACE FUNCTION capacity_holds_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'APPEND_ONLY: capacity holds are never deleted' USING ERRCODE = 'VC001';
  END IF;
  IF OLD.state <> 1 OR NEW.id <> OLD.id OR NEW.gpus <> OLD.gpus OR NEW.pool_id <> OLD.pool_id
     OR NEW.datacenter_id <> OLD.datacenter_id THEN
    RAISE EXCEPTION 'CAPACITY_HOLD_RESOLVED: capacity hold % is already resolved', OLD.id
      USING ERRCODE = 'VC030';
  END IF;
  RETURN NEW;
END
$$;

-- 3. Ledger transfers: both accounts exist and belong to the transfer's program (a transfer
-- never crosses programs, which is also what lets the ledger be sharded by program), and a
-- transfer that resolves a hold (POST, VOID, EXPIRE with a pending_id) names a HOLD of its
-- program between the same two accounts.
ALTER TABLE ledger_transfers
  DROP CONSTRAINT ledger_transfers_debit_account_id_fkey,
  DROP CONSTRAINT ledger_transfers_credit_account_id_fkey,
  DROP CONSTRAINT ledger_transfers_pending_id_fkey;
CREATE FUNCTION ledger_transfers_insert_check() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
  bad record;
BEGIN
  SELECT * INTO bad FROM (
    SELECT n.id, n.program_id, n.debit_account_id, n.credit_account_id, n.pending_id,
           COALESCE(d.program_id = n.program_id AND c.program_id = n.program_id, false)
             AS accounts_ok,
           n.pending_id IS NULL
             OR COALESCE(h.kind = 3 AND h.program_id = n.program_id
                         AND h.debit_account_id = n.debit_account_id
                         AND h.credit_account_id = n.credit_account_id, false) AS pending_ok
    FROM new_transfers n
    LEFT JOIN LATERAL (SELECT a.program_id FROM ledger_accounts a
                       WHERE a.id = n.debit_account_id) d ON true
    LEFT JOIN LATERAL (SELECT a.program_id FROM ledger_accounts a
                       WHERE a.id = n.credit_account_id) c ON true
    LEFT JOIN LATERAL (SELECT h.kind, h.program_id, h.debit_account_id, h.credit_account_id
                       FROM ledger_transfers h WHERE h.id = n.pending_id) h ON true) checked
  WHERE NOT (accounts_ok AND pending_ok)
  LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF NOT bad.accounts_ok THEN
    RAISE EXCEPTION 'TRANSFER_ACCOUNT_INVALID: transfer % moves from account % to account %, not both accounts of program %',
      bad.id, bad.debit_account_id, bad.credit_account_id, bad.program_id USING ERRCODE = 'VC006';
  END IF;
  RAISE EXCEPTION 'TRANSFER_PENDING_INVALID: transfer % resolves %, which is not a HOLD between its accounts in program %',
    bad.id, bad.pending_id, bad.program_id USING ERRCODE = 'VC008';
END
$$;
CREATE TRIGGER ledger_transfers_insert_check AFTER INSERT ON ledger_transfers
  REFERENCING NEW TABLE AS new_transfers
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfers_insert_check();

-- 4. Ledger holds: each new hold row is the state of a HOLD transfer with the same program,
-- accounts and amount.
ALTER TABLE ledger_holds
  DROP CONSTRAINT ledger_holds_transfer_id_fkey,
  DROP CONSTRAINT ledger_holds_debit_account_id_fkey,
  DROP CONSTRAINT ledger_holds_credit_account_id_fkey;
CREATE FUNCTION ledger_holds_insert_check() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
  bad record;
BEGIN
  SELECT n.transfer_id INTO bad
  FROM new_holds n
  LEFT JOIN LATERAL (SELECT t.kind, t.program_id, t.debit_account_id, t.credit_account_id,
                            t.amount_fen
                     FROM ledger_transfers t WHERE t.id = n.transfer_id) t ON true
  WHERE NOT (t.kind IS NOT DISTINCT FROM 3 AND t.program_id IS NOT DISTINCT FROM n.program_id
             AND t.debit_account_id IS NOT DISTINCT FROM n.debit_account_id
             AND t.credit_account_id IS NOT DISTINCT FROM n.credit_account_id
             AND t.amount_fen IS NOT DISTINCT FROM n.amount_fen)
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'HOLD_TRANSFER_MISMATCH: hold % is not the state of a HOLD transfer with its program, accounts and amount',
      bad.transfer_id USING ERRCODE = 'VC007';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER ledger_holds_insert_check AFTER INSERT ON ledger_holds
  REFERENCING NEW TABLE AS new_holds
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_holds_insert_check();

-- 5. Capacity holds: the pool exists.
ALTER TABLE capacity_holds DROP CONSTRAINT capacity_holds_pool_fkey;
CREATE FUNCTION capacity_holds_insert_check() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
  bad record;
BEGIN
  SELECT n.id, n.datacenter_id, n.pool_id INTO bad
  FROM new_holds n
  LEFT JOIN LATERAL (SELECT 1 AS found FROM gpu_pools p
                     WHERE p.datacenter_id = n.datacenter_id AND p.id = n.pool_id) p ON true
  WHERE p.found IS NULL
  LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'CAPACITY_HOLD_POOL_UNKNOWN: capacity hold % names pool %/%, which does not exist',
      bad.id, bad.datacenter_id, bad.pool_id USING ERRCODE = 'VC031';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER capacity_holds_insert_check AFTER INSERT ON capacity_holds
  REFERENCING NEW TABLE AS new_holds
  FOR EACH STATEMENT EXECUTE FUNCTION capacity_holds_insert_check();

-- 6. Redemptions: what redemptions_insert_guard checked per row, for the whole statement, plus
-- what the dropped foreign keys checked. The program exists with this issuer; the HOLD transfer
-- is an untouched open hold of held_fen from the enterprise's wallet in the program (so the
-- enterprise exists and holds an award there); the capacity hold is a HELD hold of the gpus in
-- the pool (so the pool exists); a replacement replaces a rejected first placement of the same
-- enterprise and program.
ALTER TABLE redemptions
  DROP CONSTRAINT redemptions_program_id_fkey,
  DROP CONSTRAINT redemptions_issuer_id_fkey,
  DROP CONSTRAINT redemptions_uscc_fkey,
  DROP CONSTRAINT redemptions_hold_transfer_id_fkey,
  DROP CONSTRAINT redemptions_capacity_hold_id_fkey,
  DROP CONSTRAINT redemptions_pool_fkey;
DROP TRIGGER redemptions_insert_guard ON redemptions;
DROP FUNCTION redemptions_insert_guard();
CREATE FUNCTION redemptions_insert_check() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
  bad record;
BEGIN
  SELECT * INTO bad FROM (
    SELECT n.id, n.program_id, n.issuer_id, n.uscc, n.hold_transfer_id, n.held_fen,
           n.capacity_hold_id, n.gpus, n.datacenter_id, n.pool_id, n.replaces,
           g.issuer_id IS NOT DISTINCT FROM n.issuer_id AS program_ok,
           t.kind IS NOT DISTINCT FROM 3 AND t.amount_fen IS NOT DISTINCT FROM n.held_fen
             AND t.program_id IS NOT DISTINCT FROM n.program_id
             AND h.resolved IS NOT DISTINCT FROM false AND h.posted_fen IS NOT DISTINCT FROM 0
             AND h.released_fen IS NOT DISTINCT FROM 0
             AND pe.wallet_account_id IS NOT DISTINCT FROM t.debit_account_id
             AND pe.wallet_account_id IS NOT NULL AS hold_ok,
           c.datacenter_id IS NOT DISTINCT FROM n.datacenter_id
             AND c.pool_id IS NOT DISTINCT FROM n.pool_id AND c.gpus IS NOT DISTINCT FROM n.gpus
             AND c.state IS NOT DISTINCT FROM 1 AS capacity_ok,
           n.replaces IS NULL
             OR COALESCE(r.state = 7 AND r.uscc = n.uscc AND r.program_id = n.program_id
                         AND r.generation = 0, false) AS replaces_ok
    FROM new_redemptions n
    LEFT JOIN LATERAL (SELECT g.issuer_id FROM programs g WHERE g.id = n.program_id) g ON true
    LEFT JOIN LATERAL (SELECT t.kind, t.amount_fen, t.program_id, t.debit_account_id
                       FROM ledger_transfers t WHERE t.id = n.hold_transfer_id) t ON true
    LEFT JOIN LATERAL (SELECT h.resolved, h.posted_fen, h.released_fen
                       FROM ledger_holds h WHERE h.transfer_id = n.hold_transfer_id) h ON true
    LEFT JOIN LATERAL (SELECT pe.wallet_account_id FROM program_enterprises pe
                       WHERE pe.program_id = n.program_id AND pe.uscc = n.uscc) pe ON true
    LEFT JOIN LATERAL (SELECT c.datacenter_id, c.pool_id, c.gpus, c.state FROM capacity_holds c
                       WHERE c.id = n.capacity_hold_id) c ON true
    LEFT JOIN LATERAL (SELECT r.state, r.uscc, r.program_id, r.generation FROM redemptions r
                       WHERE r.id = n.replaces) r ON true) checked
  WHERE NOT (program_ok AND hold_ok AND capacity_ok AND replaces_ok)
  LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF NOT bad.program_ok THEN
    RAISE EXCEPTION 'REDEMPTION_PROGRAM_MISMATCH: redemption % names program % of issuer %, which does not exist',
      bad.id, bad.program_id, bad.issuer_id USING ERRCODE = 'VC047';
  ELSIF NOT bad.hold_ok THEN
    RAISE EXCEPTION 'REDEMPTION_HOLD_MISMATCH: transfer % is not an open HOLD of % fen from the wallet of % in program %',
      bad.hold_transfer_id, bad.held_fen, bad.uscc, bad.program_id USING ERRCODE = 'VC043';
  ELSIF NOT bad.capacity_ok THEN
    RAISE EXCEPTION 'REDEMPTION_HOLD_MISMATCH: capacity hold % is not a HELD hold of % GPUs in %/%',
      bad.capacity_hold_id, bad.gpus, bad.datacenter_id, bad.pool_id USING ERRCODE = 'VC043';
  ELSE
    RAISE EXCEPTION 'REDEMPTION_REPLACES_INVALID: % is not a rejected first placement of this request',
      bad.replaces USING ERRCODE = 'VC044';
  END IF;
END
$$;
CREATE TRIGGER redemptions_insert_check AFTER INSERT ON redemptions
  REFERENCING NEW TABLE AS new_redemptions
  FOR EACH STATEMENT EXECUTE FUNCTION redemptions_insert_check();

-- 7. Usage records: what usage_records_match_redemption checked per row (the record carries
-- its redemption's terms), for the whole statement, plus what the dropped foreign keys checked
-- and more: the POST is a POST of the subsidy on the redemption's credit hold, the release a
-- VOID of that hold or the closing POST itself.
ALTER TABLE usage_records
  DROP CONSTRAINT usage_records_redemption_id_fkey,
  DROP CONSTRAINT usage_records_post_transfer_id_fkey,
  DROP CONSTRAINT usage_records_release_transfer_id_fkey;
DROP TRIGGER usage_records_match_redemption ON usage_records;
DROP FUNCTION usage_records_match_redemption();
CREATE FUNCTION usage_records_insert_check() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
  bad record;
BEGIN
  SELECT * INTO bad FROM (
    SELECT n.redemption_id, n.usage_id,
           r.program_id IS NOT DISTINCT FROM n.program_id
             AND r.issuer_id IS NOT DISTINCT FROM n.issuer_id AND r.uscc IS NOT DISTINCT FROM n.uscc
             AND r.datacenter_id IS NOT DISTINCT FROM n.datacenter_id
             AND r.settlement_style IS NOT DISTINCT FROM n.settlement_style
             AND r.price_fen_per_gpu_hour IS NOT DISTINCT FROM n.price_fen_per_gpu_hour
             AND r.ratio_bps IS NOT DISTINCT FROM n.ratio_bps AS terms_ok,
           COALESCE((n.post_transfer_id IS NULL
                     OR (p.kind = 4 AND p.pending_id = r.hold_transfer_id
                         AND p.amount_fen = n.subsidy_fen))
                    AND (n.release_transfer_id IS NULL
                         OR (l.pending_id = r.hold_transfer_id
                             AND (l.kind = 5 OR (l.kind = 4
                                                 AND n.release_transfer_id = n.post_transfer_id
                                                 AND l.released_fen > 0)))), false)
             AS transfers_ok
    FROM new_records n
    LEFT JOIN LATERAL (SELECT r.program_id, r.issuer_id, r.uscc, r.datacenter_id,
                              r.settlement_style, r.price_fen_per_gpu_hour, r.ratio_bps,
                              r.hold_transfer_id
                       FROM redemptions r WHERE r.id = n.redemption_id) r ON true
    LEFT JOIN LATERAL (SELECT t.kind, t.pending_id, t.amount_fen FROM ledger_transfers t
                       WHERE t.id = n.post_transfer_id) p ON true
    LEFT JOIN LATERAL (SELECT t.kind, t.pending_id, t.released_fen FROM ledger_transfers t
                       WHERE t.id = n.release_transfer_id) l ON true) checked
  WHERE NOT (terms_ok AND transfers_ok)
  LIMIT 1;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF NOT bad.terms_ok THEN
    RAISE EXCEPTION 'USAGE_TERMS_MISMATCH: usage record % of redemption % does not carry its terms',
      bad.usage_id, bad.redemption_id USING ERRCODE = 'VC045';
  END IF;
  RAISE EXCEPTION 'USAGE_TRANSFER_MISMATCH: usage record % of redemption % names transfers that do not settle its hold',
    bad.usage_id, bad.redemption_id USING ERRCODE = 'VC048';
END
$$;
CREATE TRIGGER usage_records_insert_check AFTER INSERT ON usage_records
  REFERENCING NEW TABLE AS new_records
  FOR EACH STATEMENT EXECUTE FUNCTION usage_records_insert_check();
