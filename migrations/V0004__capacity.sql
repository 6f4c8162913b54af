-- Datacenters, GPU pools, the history of capacity reports, and vch's capacity holds
-- (DESIGN §3, §5).

CREATE TABLE datacenters (
  id               text PRIMARY KEY CONSTRAINT datacenters_id_slug CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  display_name     text NOT NULL CONSTRAINT datacenters_display_name_nonempty CHECK (display_name <> ''),
  operator_name    text NOT NULL DEFAULT '',
  region_code      text NOT NULL CONSTRAINT datacenters_region_code_format CHECK (region_code ~ '^[0-9]{6}$'),
  -- 1..8: the eight national hubs (vch.v1.NationalHub).
  hub              smallint NOT NULL CONSTRAINT datacenters_hub_known CHECK (hub BETWEEN 1 AND 8),
  national_network boolean NOT NULL,
  -- 1 ACTIVE, 2 SUSPENDED.
  state            smallint NOT NULL DEFAULT 1 CONSTRAINT datacenters_state_known CHECK (state IN (1, 2)),
  state_reason     text NOT NULL DEFAULT '',
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX datacenters_hub ON datacenters (hub, id);

CREATE TABLE gpu_pools (
  datacenter_id    text NOT NULL REFERENCES datacenters (id),
  id               text NOT NULL CONSTRAINT gpu_pools_id_slug CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  accelerator_model text NOT NULL CONSTRAINT gpu_pools_model_nonempty CHECK (accelerator_model <> ''),
  vendor           text NOT NULL DEFAULT '',
  domestic         boolean NOT NULL,
  fp8              boolean NOT NULL,
  memory_gib       integer NOT NULL CONSTRAINT gpu_pools_memory_positive CHECK (memory_gib > 0),
  fp16_tflops      integer NOT NULL DEFAULT 0 CONSTRAINT gpu_pools_fp16_nonnegative CHECK (fp16_tflops >= 0),
  fp8_tflops       integer NOT NULL DEFAULT 0 CONSTRAINT gpu_pools_fp8_nonnegative CHECK (fp8_tflops >= 0),
  gpus_total       integer NOT NULL CONSTRAINT gpu_pools_total_positive CHECK (gpus_total > 0),
  -- As last reported by the operator (0 before the first report).
  gpus_free        integer NOT NULL DEFAULT 0,
  -- Held by vch placements not yet reflected in a report.
  gpus_held        integer NOT NULL DEFAULT 0,
  price_fen_per_gpu_hour bigint NOT NULL CONSTRAINT gpu_pools_price_positive CHECK (price_fen_per_gpu_hour > 0),
  reported_at      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT gpu_pools_pkey PRIMARY KEY (datacenter_id, id),
  CONSTRAINT gpu_pools_free_within_total CHECK (gpus_free BETWEEN 0 AND gpus_total),
  CONSTRAINT gpu_pools_held_within_total CHECK (gpus_held BETWEEN 0 AND gpus_total),
  CONSTRAINT gpu_pools_fp8_tflops_needs_fp8 CHECK (fp8 OR fp8_tflops = 0)
);

-- Every report, kept for utilization over time: append-only.
CREATE TABLE capacity_reports (
  id            bigserial PRIMARY KEY,
  datacenter_id text NOT NULL,
  pool_id       text NOT NULL,
  hub           smallint NOT NULL,
  gpus_total    integer NOT NULL CONSTRAINT capacity_reports_total_positive CHECK (gpus_total > 0),
  gpus_free     integer NOT NULL,
  reported_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT capacity_reports_free_within_total CHECK (gpus_free BETWEEN 0 AND gpus_total),
  CONSTRAINT capacity_reports_pool_fkey FOREIGN KEY (datacenter_id, pool_id)
    REFERENCES gpu_pools (datacenter_id, id)
);
CREATE INDEX capacity_reports_pool_time ON capacity_reports (datacenter_id, pool_id, reported_at);
CREATE INDEX capacity_reports_hub_time ON capacity_reports (hub, reported_at);
CREATE TRIGGER capacity_reports_append_only BEFORE UPDATE OR DELETE ON capacity_reports
  FOR EACH ROW EXECUTE FUNCTION vch_forbid_mutation();
CREATE TRIGGER capacity_reports_no_truncate BEFORE TRUNCATE ON capacity_reports
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();

-- GPUs vch reserved in a pool for a placement until the operator confirms, the request is
-- cancelled or rejected, or the hold expires. The pool's gpus_held is the sum of its HELD rows,
-- kept in the same transaction as every change of state here.
CREATE TABLE capacity_holds (
  id            bigserial PRIMARY KEY,
  datacenter_id text NOT NULL,
  pool_id       text NOT NULL,
  gpus          integer NOT NULL CONSTRAINT capacity_holds_gpus_positive CHECK (gpus > 0),
  -- Who placed it (principal tenant or subject) and what for (a placement request id).
  owner         text NOT NULL,
  purpose       text NOT NULL,
  -- 1 HELD, 2 RELEASED, 3 CONSUMED (the job started; the operator's reports now count it).
  state         smallint NOT NULL DEFAULT 1 CONSTRAINT capacity_holds_state_known CHECK (state BETWEEN 1 AND 3),
  expires_at    timestamptz NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  resolved_at   timestamptz,
  CONSTRAINT capacity_holds_pool_fkey FOREIGN KEY (datacenter_id, pool_id)
    REFERENCES gpu_pools (datacenter_id, id),
  CONSTRAINT capacity_holds_resolution_time CHECK ((state = 1) = (resolved_at IS NULL))
);
CREATE INDEX capacity_holds_open_by_expiry ON capacity_holds (expires_at) WHERE state = 1;

-- A hold leaves HELD once and never changes again.
CREATE FUNCTION capacity_holds_forward_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'APPEND_ONLY: capacity holds are never deleted' USING ERRCODE = 'VC001';
  END IF;
  IF OLD.state <> 1 OR NEW.gpus <> OLD.gpus OR NEW.pool_id <> OLD.pool_id
     OR NEW.datacenter_id <> OLD.datacenter_id THEN
    RAISE EXCEPTION 'CAPACITY_HOLD_RESOLVED: capacity hold % is already resolved', OLD.id
      USING ERRCODE = 'VC030';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER capacity_holds_forward_only BEFORE UPDATE OR DELETE ON capacity_holds
  FOR EACH ROW EXECUTE FUNCTION capacity_holds_forward_only();
CREATE TRIGGER capacity_holds_no_truncate BEFORE TRUNCATE ON capacity_holds
  FOR EACH STATEMENT EXECUTE FUNCTION vch_forbid_mutation();
