-- Redemption and settlement (DESIGN §3-§5): redemptions with their credit and capacity holds,
-- metered usage records that settle at once, the programs' monthly spend, and payouts.
-- Invariant 5 of DESIGN §4 (subsidy * 10000 <= bill * ratio) is a CHECK on every settlement
-- row; usage records, payouts and payout lines are append-only.

-- How a program pays its voucher share: 1 DIRECT (datacenter's receivable), 2 REIMBURSE
-- (payable to the enterprise). Fixed once the program opened, like every other rule.
ALTER TABLE programs ADD COLUMN settlement_style smallint NOT NULL DEFAULT 1
  CONSTRAINT programs_settlement_style_known CHECK (settlement_style IN (1, 2));

CREATE OR REPLACE FUNCTION programs_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'APPEND_ONLY: programs are archived, never deleted' USING ERRCODE = 'VC001';
  END IF;
  IF NEW.id <> OLD.id OR NEW.issuer_id <> OLD.issuer_id
     OR NEW.treasury_account_id <> OLD.treasury_account_id
     OR NEW.budget_account_id <> OLD.budget_account_id
     OR NEW.lapsed_account_id <> OLD.lapsed_account_id THEN
    RAISE EXCEPTION 'PROGRAM_IMMUTABLE: a program keeps its id, issuer and accounts'
      USING ERRCODE = 'VC010';
  END IF;
  IF NOT ((OLD.state = NEW.state) OR (OLD.state = 1 AND NEW.state IN (2, 4))
          OR (OLD.state = 2 AND NEW.state = 3) OR (OLD.state = 3 AND NEW.state = 4)) THEN
    RAISE EXCEPTION 'PROGRAM_STATE_INVALID: program % cannot go from state % to %',
      OLD.id, OLD.state, NEW.state USING ERRCODE = 'VC011';
  END IF;
  IF OLD.state <> 1 AND (ROW(NEW.display_name, NEW.category, NEW.planned_budget_fen,
      NEW.subsidy_ratio_bps, NEW.per_enterprise_cap_fen, NEW.max_award_fen,
      NEW.monthly_spend_limit_fen, NEW.eligible_kinds, NEW.eligible_sizes,
      NEW.local_enterprises_only, NEW.application_start, NEW.application_end,
      NEW.redemption_start, NEW.redemption_end, NEW.datacenter_scope, NEW.datacenter_ids,
      NEW.allowed_accelerators, NEW.domestic_ratio_bps, NEW.price_ceiling_fen_per_gpu_hour,
      NEW.settlement_style)
    IS DISTINCT FROM ROW(OLD.display_name, OLD.category, OLD.planned_budget_fen,
      OLD.subsidy_ratio_bps, OLD.per_enterprise_cap_fen, OLD.max_award_fen,
      OLD.monthly_spend_limit_fen, OLD.eligible_kinds, OLD.eligible_sizes,
      OLD.local_enterprises_only, OLD.application_start, OLD.application_end,
      OLD.redemption_start, OLD.redemption_end, OLD.datacenter_scope, OLD.datacenter_ids,
      OLD.allowed_accelerators, OLD.domestic_ratio_bps, OLD.price_ceiling_fen_per_gpu_hour,
      OLD.settlement_style)) THEN
    RAISE EXCEPTION 'PROGRAM_NOT_DRAFT: rules of program % are fixed once it opened', OLD.id
      USING ERRCODE = 'VC012';
  END IF;
  RETURN NEW;
END
$$;
CREATE SEQUENCE redemption_id_seq;

CREATE TABLE redemptions (
  id                     bigint PRIMARY KEY,
  program_id             text NOT NULL REFERENCES programs (id),
  issuer_id              text NOT NULL REFERENCES issuers (id),
  uscc                   text NOT NULL REFERENCES enterprises (uscc),
  datacenter_id          text NOT NULL,
  pool_id                text NOT NULL,
  -- The request as made.
  accelerator_model      text NOT NULL DEFAULT '',
  fp8_required           boolean NOT NULL DEFAULT false,
  domestic_required      boolean NOT NULL DEFAULT false,
  min_memory_gib         integer NOT NULL DEFAULT 0,
  max_price_fen_per_gpu_hour bigint NOT NULL DEFAULT 0,
  preferred_region_prefix text NOT NULL DEFAULT '',
  gpus                   integer NOT NULL CONSTRAINT redemptions_gpus_positive CHECK (gpus > 0),
  hours                  integer NOT NULL CONSTRAINT redemptions_hours_range CHECK (hours BETWEEN 1 AND 2160),
  -- Terms at placement.
  price_fen_per_gpu_hour bigint NOT NULL CONSTRAINT redemptions_price_positive CHECK (price_fen_per_gpu_hour > 0),
  ratio_bps              integer NOT NULL CONSTRAINT redemptions_ratio_range CHECK (ratio_bps BETWEEN 1 AND 10000),
  settlement_style       smallint NOT NULL CONSTRAINT redemptions_settlement_style_known CHECK (settlement_style IN (1, 2)),
  estimated_bill_fen     bigint NOT NULL,
  held_fen               bigint NOT NULL CONSTRAINT redemptions_held_positive CHECK (held_fen > 0),
  hold_transfer_id       bigint NOT NULL REFERENCES ledger_transfers (id),
  capacity_hold_id       bigint NOT NULL REFERENCES capacity_holds (id),
  expires_at             timestamptz NOT NULL,
  -- 1 PLACED, 2 CONFIRMED, 3 ACTIVE, 4 SETTLED, 5 CANCELLED, 6 EXPIRED, 7 REJECTED.
  state                  smallint NOT NULL DEFAULT 1 CONSTRAINT redemptions_state_known CHECK (state BETWEEN 1 AND 7),
  state_reason           text NOT NULL DEFAULT '',
  -- A rejected redemption is placed again at most once: the replacement names it.
  replaces               bigint CONSTRAINT redemptions_replaced_once UNIQUE REFERENCES redemptions (id),
  generation             smallint NOT NULL DEFAULT 0,
  replaced_by            bigint REFERENCES redemptions (id),
  -- Settled so far.
  gpu_seconds            bigint NOT NULL DEFAULT 0 CONSTRAINT redemptions_gpu_seconds_nonnegative CHECK (gpu_seconds >= 0),
  billed_fen             bigint NOT NULL DEFAULT 0 CONSTRAINT redemptions_billed_nonnegative CHECK (billed_fen >= 0),
  subsidy_fen            bigint NOT NULL DEFAULT 0 CONSTRAINT redemptions_subsidy_nonnegative CHECK (subsidy_fen >= 0),
  usage_records          integer NOT NULL DEFAULT 0,
  voucher_key_id         text NOT NULL,
  voucher_signature      bytea NOT NULL CONSTRAINT redemptions_signature_length CHECK (length(voucher_signature) = 64),
  request_scope          text NOT NULL,
  request_id             text NOT NULL,
  created_at             timestamptz NOT NULL,
  updated_at             timestamptz NOT NULL,
  CONSTRAINT redemptions_estimate_exact CHECK (
    estimated_bill_fen::numeric = gpus::numeric * hours * price_fen_per_gpu_hour),
  CONSTRAINT redemptions_hold_is_share CHECK (
    held_fen::numeric = div(estimated_bill_fen::numeric * ratio_bps, 10000)),
  CONSTRAINT redemptions_subsidy_within_hold CHECK (subsidy_fen <= held_fen),
  CONSTRAINT redemptions_subsidy_within_ratio CHECK (
    subsidy_fen::numeric * 10000 <= billed_fen::numeric * ratio_bps),
  CONSTRAINT redemptions_generation CHECK (
    (replaces IS NULL AND generation = 0) OR (replaces IS NOT NULL AND generation = 1)),
  CONSTRAINT redemptions_replaced_only_when_rejected CHECK (replaced_by IS NULL OR state = 7),
  CONSTRAINT redemptions_request_once UNIQUE (request_scope, request_id),
  CONSTRAINT redemptions_hold_once UNIQUE (hold_transfer_id),
  CONSTRAINT redemptions_capacity_hold_once UNIQUE (capacity_hold_id),
  CONSTRAINT redemptions_pool_fkey FOREIGN KEY (datacenter_id, pool_id)
    REFERENCES gpu_pools (datacenter_id, id)
);
CREATE INDEX redemptions_enterprise ON redemptions (uscc, id);
CREATE INDEX redemptions_program ON redemptions (program_id, id);
CREATE INDEX redemptions_datacenter ON redemptions (datacenter_id, id);
CREATE INDEX redemptions_placed_by_expiry ON redemptions (expires_at) WHERE state = 1;
CREATE INDEX redemptions_pending ON redemptions (datacenter_id, id) WHERE state = 1;

-- States move forward only (PLACED -> CONFIRMED | CANCELLED | EXPIRED | REJECTED;
-- CONFIRMED -> ACTIVE | SETTLED | CANCELLED; ACTIVE -> ACTIVE | SETTLED), the terms never
-- change, settled totals only grow, and a rejected redemption names its replacement once.
CREATE FUNCTION redemptions_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'APPEND_ONLY: redemptions are never deleted' USING ERRCODE = 'VC001';
  END IF;
  IF ROW(NEW.id, NEW.program_id, NEW.issuer_id, NEW.uscc, NEW.datacenter_id, NEW.pool_id,
         NEW.accelerator_model, NEW.fp8_required, NEW.domestic_required, NEW.min_memory_gib,
         NEW.max_price_fen_per_gpu_hour, NEW.preferred_region_prefix, NEW.gpus, NEW.hours, NEW.price_fen_per_gpu_hour, NEW.ratio_bps, NEW.settlement_style,
         NEW.estimated_bill_fen, NEW.held_fen, NEW.hold_transfer_id, NEW.capacity_hold_id,
         NEW.expires_at, NEW.replaces, NEW.generation, NEW.voucher_key_id,
         NEW.voucher_signature, NEW.request_scope, NEW.request_id, NEW.created_at)
     IS DISTINCT FROM
     ROW(OLD.id, OLD.program_id, OLD.issuer_id, OLD.uscc, OLD.datacenter_id, OLD.pool_id,
         OLD.accelerator_model, OLD.fp8_required, OLD.domestic_required, OLD.min_memory_gib,
         OLD.max_price_fen_per_gpu_hour, OLD.preferred_region_prefix, OLD.gpus, OLD.hours, OLD.price_fen_per_gpu_hour, OLD.ratio_bps, OLD.settlement_style,
         OLD.estimated_bill_fen, OLD.held_fen, OLD.hold_transfer_id, OLD.capacity_hold_id,
         OLD.expires_at, OLD.replaces, OLD.generation, OLD.voucher_key_id,
         OLD.voucher_signature, OLD.request_scope, OLD.request_id, OLD.created_at) THEN
    RAISE EXCEPTION 'REDEMPTION_IMMUTABLE: the terms of redemption % never change', OLD.id
      USING ERRCODE = 'VC040';
  END IF;
  IF NOT ((OLD.state = 1 AND NEW.state IN (2, 5, 6, 7))
          OR (OLD.state = 2 AND NEW.state IN (3, 4, 5))
          OR (OLD.state = 3 AND NEW.state IN (3, 4))
          OR (OLD.state = 7 AND NEW.state = 7 AND OLD.replaced_by IS NULL
              AND NEW.replaced_by IS NOT NULL)) THEN
    RAISE EXCEPTION 'REDEMPTION_STATE_INVALID: redemption % cannot go from state % to %',
      OLD.id, OLD.state, NEW.state USING ERRCODE = 'VC041';
  END IF;
  IF NEW.gpu_seconds < OLD.gpu_seconds OR NEW.billed_fen < OLD.billed_fen
     OR NEW.subsidy_fen < OLD.subsidy_fen OR NEW.usage_records < OLD.usage_records
     OR (OLD.replaced_by IS NOT NULL AND NEW.replaced_by IS DISTINCT FROM OLD.replaced_by) THEN
    RAISE EXCEPTION 'REDEMPTION_IMMUTABLE: settled totals of redemption % only grow', OLD.id
      USING ERRCODE = 'VC040';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER redemptions_guard BEFORE UPDATE OR DELETE ON redemptions
  FOR EACH ROW EXECUTE FUNCTION redemptions_guard();
-- (After the row's own constraints.) A new redemption holds what it says: its HOLD transfer is
-- an untouched open hold of held_fen from its enterprise's wallet in its program, its capacity
-- hold is a HELD hold of its gpus in its pool, and a replacement replaces a rejected redemption
-- of the same enterprise and program.
CREATE FUNCTION redemptions_insert_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM ledger_transfers t
                 JOIN ledger_holds h ON h.transfer_id = t.id AND NOT h.resolved
                   AND h.posted_fen = 0 AND h.released_fen = 0
                 JOIN program_enterprises pe ON pe.wallet_account_id = t.debit_account_id
                 WHERE t.id = NEW.hold_transfer_id AND t.kind = 3 AND t.amount_fen = NEW.held_fen
                   AND t.program_id = NEW.program_id AND pe.program_id = NEW.program_id
                   AND pe.uscc = NEW.uscc) THEN
    RAISE EXCEPTION 'REDEMPTION_HOLD_MISMATCH: transfer % is not an open HOLD of % fen from the wallet of % in program %',
      NEW.hold_transfer_id, NEW.held_fen, NEW.uscc, NEW.program_id USING ERRCODE = 'VC043';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM capacity_holds h
                 WHERE h.id = NEW.capacity_hold_id AND h.datacenter_id = NEW.datacenter_id
                   AND h.pool_id = NEW.pool_id AND h.gpus = NEW.gpus AND h.state = 1) THEN
    RAISE EXCEPTION 'REDEMPTION_HOLD_MISMATCH: capacity hold % is not a HELD hold of % GPUs in %/%',
      NEW.capacity_hold_id, NEW.gpus, NEW.datacenter_id, NEW.pool_id USING ERRCODE = 'VC043';
  END IF;
  IF NEW.replaces IS NOT NULL AND NOT EXISTS (
       SELECT 1 FROM redemptions r WHERE r.id = NEW.replaces AND r.state = 7
         AND r.uscc = NEW.uscc AND r.program_id = NEW.program_id AND r.generation = 0) THEN
    RAISE EXCEPTION 'REDEMPTION_REPLACES_INVALID: % is not a rejected first placement of this request',
      NEW.replaces USING ERRCODE = 'VC044';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER redemptions_insert_guard AFTER INSERT ON redemptions
  FOR EACH ROW EXECUTE FUNCTION redemptions_insert_guard();
CREATE TRIGGER redemptions_no_truncate BEFORE TRUNCATE ON redemptions
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();

-- Metered usage, one row per operator record, settled when written. Invariant 5 and 6.
CREATE SEQUENCE usage_record_seq;
CREATE TABLE usage_records (
  redemption_id          bigint NOT NULL REFERENCES redemptions (id),
  usage_id               text NOT NULL CONSTRAINT usage_records_id_valid CHECK (
                           usage_id <> '' AND length(usage_id) <= 128),
  -- Settlement order (payout statements list lines in it).
  seq                    bigint NOT NULL DEFAULT nextval('usage_record_seq'),
  program_id             text NOT NULL,
  issuer_id              text NOT NULL,
  uscc                   text NOT NULL,
  datacenter_id          text NOT NULL,
  settlement_style       smallint NOT NULL CONSTRAINT usage_records_settlement_style_known CHECK (settlement_style IN (1, 2)),
  gpu_seconds            bigint NOT NULL CONSTRAINT usage_records_gpu_seconds_nonnegative CHECK (gpu_seconds >= 0),
  start_at               timestamptz NOT NULL,
  end_at                 timestamptz NOT NULL,
  final                  boolean NOT NULL,
  price_fen_per_gpu_hour bigint NOT NULL CONSTRAINT usage_records_price_positive CHECK (price_fen_per_gpu_hour > 0),
  ratio_bps              integer NOT NULL CONSTRAINT usage_records_ratio_range CHECK (ratio_bps BETWEEN 1 AND 10000),
  bill_fen               bigint NOT NULL,
  subsidy_fen            bigint NOT NULL CONSTRAINT usage_records_subsidy_nonnegative CHECK (subsidy_fen >= 0),
  copay_fen              bigint NOT NULL,
  -- 0 none, 1 the rest of the hold, 2 the program's monthly spend limit.
  capped_by              smallint NOT NULL CONSTRAINT usage_records_capped_by_known CHECK (capped_by BETWEEN 0 AND 2),
  post_transfer_id       bigint REFERENCES ledger_transfers (id),
  release_transfer_id    bigint REFERENCES ledger_transfers (id),
  request_hash           text NOT NULL,
  settled_at             timestamptz NOT NULL,
  CONSTRAINT usage_records_pkey PRIMARY KEY (redemption_id, usage_id),
  CONSTRAINT usage_records_interval CHECK (start_at <= end_at),
  CONSTRAINT usage_records_bill_exact CHECK (
    bill_fen::numeric = div(gpu_seconds::numeric * price_fen_per_gpu_hour, 3600)),
  CONSTRAINT usage_records_subsidy_within_ratio CHECK (
    subsidy_fen::numeric * 10000 <= bill_fen::numeric * ratio_bps),
  CONSTRAINT usage_records_copay CHECK (copay_fen >= 0 AND copay_fen = bill_fen - subsidy_fen),
  CONSTRAINT usage_records_post_iff_subsidy CHECK ((post_transfer_id IS NULL) = (subsidy_fen = 0)),
  CONSTRAINT usage_records_release_only_final CHECK (release_transfer_id IS NULL OR final)
);
CREATE UNIQUE INDEX usage_records_one_final ON usage_records (redemption_id) WHERE final;
CREATE UNIQUE INDEX usage_records_seq ON usage_records (seq);
CREATE INDEX usage_records_datacenter_claims ON usage_records (program_id, datacenter_id, settled_at)
  WHERE settlement_style = 1 AND subsidy_fen > 0;
CREATE INDEX usage_records_enterprise_claims ON usage_records (program_id, uscc, settled_at)
  WHERE settlement_style = 2 AND subsidy_fen > 0;
-- (After the row's own constraints.) A usage record settles on its redemption's terms: the copies it carries (for payouts and
-- reports) are the redemption's own.
CREATE FUNCTION usage_records_match_redemption() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM redemptions r
                 WHERE r.id = NEW.redemption_id AND r.program_id = NEW.program_id
                   AND r.issuer_id = NEW.issuer_id AND r.uscc = NEW.uscc
                   AND r.datacenter_id = NEW.datacenter_id
                   AND r.settlement_style = NEW.settlement_style
                   AND r.price_fen_per_gpu_hour = NEW.price_fen_per_gpu_hour
                   AND r.ratio_bps = NEW.ratio_bps) THEN
    RAISE EXCEPTION 'USAGE_TERMS_MISMATCH: usage record % of redemption % does not carry its terms',
      NEW.usage_id, NEW.redemption_id USING ERRCODE = 'VC045';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER usage_records_match_redemption AFTER INSERT ON usage_records
  FOR EACH ROW EXECUTE FUNCTION usage_records_match_redemption();
CREATE TRIGGER usage_records_append_only BEFORE UPDATE OR DELETE ON usage_records
  FOR EACH ROW EXECUTE FUNCTION vch_forbid_mutation();
CREATE TRIGGER usage_records_no_truncate BEFORE TRUNCATE ON usage_records
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();

-- What a program with a monthly spend limit settled per calendar month (China Standard Time).
CREATE TABLE program_monthly_spend (
  program_id  text NOT NULL REFERENCES programs (id),
  month       date NOT NULL CONSTRAINT program_monthly_spend_first_day CHECK (extract(day FROM month) = 1),
  limit_fen   bigint NOT NULL CONSTRAINT program_monthly_spend_limit_positive CHECK (limit_fen > 0),
  spent_fen   bigint NOT NULL DEFAULT 0 CONSTRAINT program_monthly_spend_nonnegative CHECK (spent_fen >= 0),
  CONSTRAINT program_monthly_spend_pkey PRIMARY KEY (program_id, month),
  CONSTRAINT program_monthly_spend_within_limit CHECK (spent_fen <= limit_fen)
);

-- Spend only grows, the limit is the program's (fixed once open), rows are never deleted.
CREATE FUNCTION program_monthly_spend_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'APPEND_ONLY: monthly spend is never deleted' USING ERRCODE = 'VC001';
  END IF;
  IF NEW.program_id <> OLD.program_id OR NEW.month <> OLD.month OR NEW.limit_fen <> OLD.limit_fen
     OR NEW.spent_fen < OLD.spent_fen THEN
    RAISE EXCEPTION 'MONTHLY_SPEND_IMMUTABLE: monthly spend of % in % only grows', OLD.program_id,
      OLD.month USING ERRCODE = 'VC046';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER program_monthly_spend_forward_only BEFORE UPDATE OR DELETE ON program_monthly_spend
  FOR EACH ROW EXECUTE FUNCTION program_monthly_spend_forward_only();
CREATE TRIGGER program_monthly_spend_no_truncate BEFORE TRUNCATE ON program_monthly_spend
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();

-- Payouts: settled claims of one program and period, paid by one PAYOUT transfer.
CREATE SEQUENCE payout_id_seq;
CREATE TABLE payouts (
  id            bigint PRIMARY KEY,
  program_id    text NOT NULL REFERENCES programs (id),
  issuer_id     text NOT NULL REFERENCES issuers (id),
  -- 1 a datacenter (DIRECT claims), 2 an enterprise (REIMBURSE claims).
  payee_kind    smallint NOT NULL CONSTRAINT payouts_payee_kind_known CHECK (payee_kind IN (1, 2)),
  payee         text NOT NULL CONSTRAINT payouts_payee_nonempty CHECK (payee <> ''),
  period_start  timestamptz NOT NULL,
  period_end    timestamptz NOT NULL,
  amount_fen    bigint NOT NULL CONSTRAINT payouts_amount_positive CHECK (amount_fen > 0),
  lines         integer NOT NULL CONSTRAINT payouts_lines_positive CHECK (lines > 0),
  transfer_id   bigint NOT NULL CONSTRAINT payouts_transfer_once UNIQUE REFERENCES ledger_transfers (id),
  created_by    text NOT NULL,
  request_scope text NOT NULL,
  request_id    text NOT NULL,
  created_at    timestamptz NOT NULL,
  CONSTRAINT payouts_period_ordered CHECK (period_start < period_end),
  CONSTRAINT payouts_request_once UNIQUE (request_scope, request_id)
);
CREATE INDEX payouts_payee ON payouts (payee_kind, payee, id);
CREATE INDEX payouts_program ON payouts (program_id, id);
CREATE TRIGGER payouts_append_only BEFORE UPDATE OR DELETE ON payouts
  FOR EACH ROW EXECUTE FUNCTION vch_forbid_mutation();
CREATE TRIGGER payouts_no_truncate BEFORE TRUNCATE ON payouts
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();

-- Each usage record is paid at most once.
CREATE TABLE payout_lines (
  payout_id     bigint NOT NULL REFERENCES payouts (id),
  redemption_id bigint NOT NULL,
  usage_id      text NOT NULL,
  CONSTRAINT payout_lines_paid_once PRIMARY KEY (redemption_id, usage_id),
  CONSTRAINT payout_lines_usage_fkey FOREIGN KEY (redemption_id, usage_id)
    REFERENCES usage_records (redemption_id, usage_id)
);
CREATE INDEX payout_lines_payout ON payout_lines (payout_id);
CREATE TRIGGER payout_lines_append_only BEFORE UPDATE OR DELETE ON payout_lines
  FOR EACH ROW EXECUTE FUNCTION vch_forbid_mutation();
CREATE TRIGGER payout_lines_no_truncate BEFORE TRUNCATE ON payout_lines
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();

-- At commit, a payout pays exactly its lines: the amount is the sum of their subsidies, each
-- line is a claim of the payout's program and payee settled within its period, the payout's
-- issuer is the program's, its transfer is a PAYOUT of its amount from the payee's receivable
-- (or payable) to the payee's paid account in its program, and the count matches.
CREATE FUNCTION payout_matches_lines(payout bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  p payouts%ROWTYPE;
  total numeric;
  n integer;
  foreign_lines integer;
BEGIN
  SELECT * INTO p FROM payouts WHERE id = payout;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'PAYOUT_MISMATCH: payout % does not exist', payout USING ERRCODE = 'VC042';
  END IF;
  SELECT COALESCE(sum(u.subsidy_fen), 0), count(*),
         count(*) FILTER (WHERE u.program_id <> p.program_id
           OR u.settlement_style <> p.payee_kind
           OR (p.payee_kind = 1 AND u.datacenter_id <> p.payee)
           OR (p.payee_kind = 2 AND u.uscc <> p.payee)
           OR u.settled_at < p.period_start OR u.settled_at >= p.period_end
           OR u.subsidy_fen = 0)
    INTO total, n, foreign_lines
    FROM payout_lines l JOIN usage_records u USING (redemption_id, usage_id)
   WHERE l.payout_id = payout;
  IF total <> p.amount_fen OR n <> p.lines OR foreign_lines <> 0
     OR NOT EXISTS (SELECT 1 FROM programs g WHERE g.id = p.program_id AND g.issuer_id = p.issuer_id)
     OR NOT EXISTS (SELECT 1 FROM ledger_transfers t
                    JOIN ledger_accounts d ON d.id = t.debit_account_id
                    JOIN ledger_accounts c ON c.id = t.credit_account_id
                    WHERE t.id = p.transfer_id AND t.kind = 7 AND t.amount_fen = p.amount_fen
                      AND t.program_id = p.program_id AND d.program_id = p.program_id
                      AND d.kind = CASE WHEN p.payee_kind = 1 THEN 'RECEIVABLE' ELSE 'PAYABLE' END
                      AND d.owner = p.payee AND c.program_id = p.program_id AND c.kind = 'PAID'
                      AND c.owner = p.payee) THEN
    RAISE EXCEPTION 'PAYOUT_MISMATCH: payout % pays % fen over % lines, its lines add up to % over %',
      payout, p.amount_fen, p.lines, total, n USING ERRCODE = 'VC042';
  END IF;
END
$$;
CREATE FUNCTION payouts_match_lines() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM payout_matches_lines(NEW.id);
  RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER payouts_match_lines AFTER INSERT ON payouts
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION payouts_match_lines();
-- Every statement that adds lines re-checks the payouts it touched, whenever it runs: a line
-- added after the payout was written (or after its check ran) breaks the sum and is refused.
CREATE FUNCTION payout_lines_match_payouts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  payout bigint;
BEGIN
  FOR payout IN SELECT DISTINCT payout_id FROM new_lines LOOP
    PERFORM payout_matches_lines(payout);
  END LOOP;
  RETURN NULL;
END
$$;
CREATE TRIGGER payout_lines_match_payouts AFTER INSERT ON payout_lines
  REFERENCING NEW TABLE AS new_lines
  FOR EACH STATEMENT EXECUTE FUNCTION payout_lines_match_payouts();
