-- Issuers, programs, enterprises, applications and awards (DESIGN §3). The rules policy/
-- checks in C++ are enforced here too, by named constraints and state-machine triggers.

-- GB 32100-2015 unified social credit code: 18 characters of a 31-character alphabet, the last
-- a check character over the first 17 (weights 3^i mod 31).
CREATE FUNCTION vch_uscc_valid(code text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  alphabet constant text := '0123456789ABCDEFGHJKLMNPQRTUWXY';
  weights constant int[] := ARRAY[1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
  total int := 0;
  idx int;
BEGIN
  IF length(code) <> 18 THEN
    RETURN false;
  END IF;
  FOR i IN 1..17 LOOP
    idx := strpos(alphabet, substr(code, i, 1)) - 1;
    IF idx < 0 THEN
      RETURN false;
    END IF;
    total := total + idx * weights[i];
  END LOOP;
  RETURN substr(code, 18, 1) = substr(alphabet, (31 - total % 31) % 31 + 1, 1);
END
$$;

-- Unix microseconds <-> timestamptz, exact (no floating point).
CREATE FUNCTION vch_ts(micros bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT timestamptz 'epoch' + micros * interval '1 microsecond' $$;
CREATE FUNCTION vch_us(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT (extract(epoch FROM date_trunc('second', t))::bigint * 1000000
          + extract(microseconds FROM t)::bigint % 1000000)
$$;

CREATE TABLE issuers (
  id           text PRIMARY KEY CONSTRAINT issuers_id_slug CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  display_name text NOT NULL CONSTRAINT issuers_display_name_nonempty CHECK (display_name <> ''),
  region_code  text NOT NULL CONSTRAINT issuers_region_code_format CHECK (region_code ~ '^[0-9]{6}$'),
  -- 1 city, 2 province, 3 national.
  level        smallint NOT NULL CONSTRAINT issuers_level_known CHECK (level BETWEEN 1 AND 3),
  created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE programs (
  id                      text PRIMARY KEY CONSTRAINT programs_id_slug CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  issuer_id               text NOT NULL REFERENCES issuers (id),
  display_name            text NOT NULL CONSTRAINT programs_display_name_nonempty CHECK (display_name <> ''),
  category                smallint NOT NULL CONSTRAINT programs_category_known CHECK (category BETWEEN 1 AND 4),
  -- 1 DRAFT, 2 OPEN, 3 CLOSED, 4 ARCHIVED.
  state                   smallint NOT NULL DEFAULT 1 CONSTRAINT programs_state_known CHECK (state BETWEEN 1 AND 4),
  planned_budget_fen      bigint NOT NULL CONSTRAINT programs_planned_budget_positive CHECK (planned_budget_fen > 0),
  subsidy_ratio_bps       integer NOT NULL CONSTRAINT programs_ratio_range CHECK (subsidy_ratio_bps BETWEEN 1 AND 10000),
  per_enterprise_cap_fen  bigint NOT NULL,
  max_award_fen           bigint NOT NULL DEFAULT 0,
  monthly_spend_limit_fen bigint NOT NULL DEFAULT 0 CONSTRAINT programs_monthly_limit_nonnegative CHECK (monthly_spend_limit_fen >= 0),
  eligible_kinds          smallint[] NOT NULL CONSTRAINT programs_eligible_kinds_nonempty CHECK (cardinality(eligible_kinds) > 0),
  eligible_sizes          smallint[] NOT NULL CONSTRAINT programs_eligible_sizes_nonempty CHECK (cardinality(eligible_sizes) > 0),
  local_enterprises_only  boolean NOT NULL,
  application_start       timestamptz NOT NULL,
  application_end         timestamptz NOT NULL,
  redemption_start        timestamptz NOT NULL,
  redemption_end          timestamptz NOT NULL,
  datacenter_scope        smallint NOT NULL CONSTRAINT programs_scope_known CHECK (datacenter_scope BETWEEN 1 AND 3),
  datacenter_ids          text[] NOT NULL DEFAULT '{}',
  allowed_accelerators    smallint[] NOT NULL DEFAULT '{}',
  domestic_ratio_bps      integer NOT NULL DEFAULT 0,
  price_ceiling_fen_per_gpu_hour bigint NOT NULL CONSTRAINT programs_price_ceiling_positive CHECK (price_ceiling_fen_per_gpu_hour > 0),
  treasury_account_id     bigint NOT NULL REFERENCES ledger_accounts (id),
  budget_account_id       bigint NOT NULL REFERENCES ledger_accounts (id),
  lapsed_account_id       bigint NOT NULL REFERENCES ledger_accounts (id),
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT programs_cap_within_budget CHECK (per_enterprise_cap_fen > 0 AND per_enterprise_cap_fen <= planned_budget_fen),
  CONSTRAINT programs_max_award_within_cap CHECK (max_award_fen >= 0 AND max_award_fen <= per_enterprise_cap_fen),
  CONSTRAINT programs_windows_ordered CHECK (
    application_start < application_end AND redemption_start < redemption_end AND
    application_start <= redemption_start AND application_end <= redemption_end),
  CONSTRAINT programs_scope_list CHECK ((datacenter_scope = 3) = (cardinality(datacenter_ids) > 0)),
  CONSTRAINT programs_domestic_ratio_range CHECK (
    domestic_ratio_bps = 0 OR domestic_ratio_bps BETWEEN subsidy_ratio_bps AND 10000)
);
CREATE INDEX programs_issuer ON programs (issuer_id, id);

-- Program rules change only while DRAFT; states only move forward.
CREATE FUNCTION programs_guard() RETURNS trigger
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
      NEW.allowed_accelerators, NEW.domestic_ratio_bps, NEW.price_ceiling_fen_per_gpu_hour)
    IS DISTINCT FROM ROW(OLD.display_name, OLD.category, OLD.planned_budget_fen,
      OLD.subsidy_ratio_bps, OLD.per_enterprise_cap_fen, OLD.max_award_fen,
      OLD.monthly_spend_limit_fen, OLD.eligible_kinds, OLD.eligible_sizes,
      OLD.local_enterprises_only, OLD.application_start, OLD.application_end,
      OLD.redemption_start, OLD.redemption_end, OLD.datacenter_scope, OLD.datacenter_ids,
      OLD.allowed_accelerators, OLD.domestic_ratio_bps, OLD.price_ceiling_fen_per_gpu_hour)) THEN
    RAISE EXCEPTION 'PROGRAM_NOT_DRAFT: rules of program % are fixed once it opened', OLD.id
      USING ERRCODE = 'VC012';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER programs_guard BEFORE UPDATE OR DELETE ON programs
  FOR EACH ROW EXECUTE FUNCTION programs_guard();

CREATE TABLE enterprises (
  uscc         text PRIMARY KEY CONSTRAINT enterprises_uscc_valid CHECK (vch_uscc_valid(uscc)),
  display_name text NOT NULL CONSTRAINT enterprises_display_name_nonempty CHECK (display_name <> ''),
  region_code  text NOT NULL CONSTRAINT enterprises_region_code_format CHECK (region_code ~ '^[0-9]{6}$'),
  -- 1 SME, 2 research institution, 3 startup.
  kind         smallint NOT NULL CONSTRAINT enterprises_kind_known CHECK (kind BETWEEN 1 AND 3),
  -- 1 micro, 2 small, 3 medium, 4 large.
  size_class   smallint NOT NULL CONSTRAINT enterprises_size_known CHECK (size_class BETWEEN 1 AND 4),
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE application_id_seq;

CREATE TABLE applications (
  id                bigint PRIMARY KEY DEFAULT nextval('application_id_seq'),
  program_id        text NOT NULL REFERENCES programs (id),
  issuer_id         text NOT NULL REFERENCES issuers (id),
  uscc              text NOT NULL REFERENCES enterprises (uscc),
  requested_fen     bigint NOT NULL CONSTRAINT applications_requested_positive CHECK (requested_fen > 0),
  purpose           text NOT NULL DEFAULT '',
  -- 1 SUBMITTED, 2 APPROVED, 3 REJECTED, 4 WITHDRAWN.
  state             smallint NOT NULL DEFAULT 1 CONSTRAINT applications_state_known CHECK (state BETWEEN 1 AND 4),
  awarded_fen       bigint NOT NULL DEFAULT 0,
  decision_reason   text NOT NULL DEFAULT '',
  decided_by        text NOT NULL DEFAULT '',
  award_transfer_id bigint REFERENCES ledger_transfers (id),
  submitted_at      timestamptz NOT NULL DEFAULT now(),
  decided_at        timestamptz,
  withdrawn_at      timestamptz,
  CONSTRAINT applications_award_iff_approved CHECK (
    (state = 2) = (awarded_fen > 0 AND award_transfer_id IS NOT NULL) AND (state = 2 OR awarded_fen = 0)),
  CONSTRAINT applications_award_within_request CHECK (awarded_fen <= requested_fen),
  CONSTRAINT applications_rejection_has_reason CHECK (state <> 3 OR decision_reason <> ''),
  CONSTRAINT applications_decision_time CHECK ((state IN (2, 3)) = (decided_at IS NOT NULL)),
  CONSTRAINT applications_withdrawal_time CHECK ((state = 4) = (withdrawn_at IS NOT NULL))
);
CREATE INDEX applications_program_state ON applications (program_id, state, id);
CREATE INDEX applications_enterprise ON applications (uscc, id);
CREATE INDEX applications_issuer ON applications (issuer_id, id);

-- A decided or withdrawn application never changes again; a submitted one only leaves SUBMITTED.
CREATE FUNCTION applications_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'APPEND_ONLY: applications are never deleted' USING ERRCODE = 'VC001';
  END IF;
  IF OLD.state <> 1 THEN
    RAISE EXCEPTION 'APPLICATION_NOT_PENDING: application % is already decided or withdrawn',
      OLD.id USING ERRCODE = 'VC020';
  END IF;
  IF NEW.id <> OLD.id OR NEW.program_id <> OLD.program_id OR NEW.uscc <> OLD.uscc
     OR NEW.requested_fen <> OLD.requested_fen OR NEW.submitted_at <> OLD.submitted_at THEN
    RAISE EXCEPTION 'APPLICATION_IMMUTABLE: an application keeps what was submitted'
      USING ERRCODE = 'VC021';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER applications_guard BEFORE UPDATE OR DELETE ON applications
  FOR EACH ROW EXECUTE FUNCTION applications_guard();

-- One enterprise's standing in one program. Invariant 4 of DESIGN §4: net awards never exceed
-- the program's per-enterprise cap (copied here when the row is made; rules are fixed once open).
CREATE TABLE program_enterprises (
  program_id        text NOT NULL REFERENCES programs (id),
  uscc              text NOT NULL REFERENCES enterprises (uscc),
  issuer_id         text NOT NULL REFERENCES issuers (id),
  cap_fen           bigint NOT NULL CONSTRAINT program_enterprises_cap_positive CHECK (cap_fen > 0),
  awarded_fen       bigint NOT NULL DEFAULT 0 CONSTRAINT program_enterprises_awarded_nonnegative CHECK (awarded_fen >= 0),
  clawed_back_fen   bigint NOT NULL DEFAULT 0 CONSTRAINT program_enterprises_clawed_back_nonnegative CHECK (clawed_back_fen >= 0),
  wallet_account_id bigint NOT NULL REFERENCES ledger_accounts (id),
  CONSTRAINT program_enterprises_pkey PRIMARY KEY (program_id, uscc),
  CONSTRAINT program_enterprises_within_cap CHECK (awarded_fen - clawed_back_fen <= cap_fen),
  CONSTRAINT program_enterprises_clawback_within_award CHECK (clawed_back_fen <= awarded_fen)
);

-- Clawbacks, with their reasons: append-only.
CREATE TABLE clawbacks (
  transfer_id bigint PRIMARY KEY REFERENCES ledger_transfers (id),
  program_id  text NOT NULL REFERENCES programs (id),
  uscc        text NOT NULL REFERENCES enterprises (uscc),
  amount_fen  bigint NOT NULL CONSTRAINT clawbacks_amount_positive CHECK (amount_fen > 0),
  reason      text NOT NULL CONSTRAINT clawbacks_reason_nonempty CHECK (reason <> ''),
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER clawbacks_append_only BEFORE UPDATE OR DELETE ON clawbacks
  FOR EACH ROW EXECUTE FUNCTION vch_forbid_mutation();
