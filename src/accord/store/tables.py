"""The schema. Alembic migrations under `migrations/` create exactly this (a test checks)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from accord.store.types import Document, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Named counters, bumped with UPDATE ... RETURNING: golden ids and the audit sequence.
# The UPDATE also serializes writers of the same counter on both backends.
counter = Table(
    "counter",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# One row per applied version of the project files (configuration as code, C7.7).
project_version = Table(
    "project_version",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("applied_at", UTCDateTime, nullable=False),
    Column("applied_by", String(200), nullable=False),
    Column("content", Document, nullable=False),
)

# One load: a file, a batch or a poll. Every source record and quarantine entry names it,
# so a load can be inspected (and later withdrawn) as a unit.
load = Table(
    "load",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("system", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("source_name", Text, nullable=False),
    Column("mapping_version", String(64), nullable=False),
    Column("project_digest", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("counts", Document, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)

# A push request with an Idempotency-Key, and the answer given: a retry with the same key
# and the same body gets that answer again and changes nothing.
push_request = Table(
    "push_request",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("system", String(64), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("load_id", Integer, ForeignKey("load.id"), nullable=False),
    Column("answer", Document, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("system", "idempotency_key"),
)

# Where the SQL polling channel stopped in each system's source (`intake/poll.py`): the
# last (watermark, key) stored, as text with the type it is read back as. It moves in the
# transaction that stores the rows it covers, so a crash never skips or repeats a row.
poll_cursor = Table(
    "poll_cursor",
    metadata,
    Column("system", String(64), primary_key=True),
    Column("watermark", Text),
    Column("watermark_type", String(16)),
    Column("last_key", Text),
    Column("key_type", String(16)),
    Column("last_run_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

# When each pull channel of each system runs (`runtime/scheduler.py`): when it is due
# next, which worker holds it now (a lease that runs out if the holder dies), and how its
# last run went. Claimed by a conditional UPDATE, so of several workers one runs it.
intake_schedule = Table(
    "intake_schedule",
    metadata,
    Column("system", String(64), primary_key=True),
    Column("channel", String(16), primary_key=True),
    # the timing `due_at` was worked out for ("every 5m", "cron 0 2 * * *", "continuous"):
    # when the project changes it, the due time is worked out again
    Column("timing", String(200), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("last_started_at", UTCDateTime),
    Column("last_finished_at", UTCDateTime),
    Column("last_outcome", String(16)),  # ok, failed, stopped
    Column("last_message", Text),
    Column("last_load_id", Integer),
    Column("last_counts", Document),
    Column("failures", Integer, nullable=False),  # failed runs in a row
    Column("updated_at", UTCDateTime, nullable=False),
)

# A signed webhook delivery, by the hash of what was signed (timestamp and body): the
# same delivery again is a duplicate. Kept while a replay could still pass the
# timestamp check, then pruned.
webhook_delivery = Table(
    "webhook_delivery",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("system", String(64), nullable=False),
    Column("signature", String(64), nullable=False),
    Column("load_id", Integer, ForeignKey("load.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("system", "signature"),
    Index(None, "created_at"),
)

# A broker message stored but not yet known to be acknowledged: a redelivery after a
# crash between the commit and the ack is recognized and only acknowledged. Deleted
# once the acks are sent.
broker_delivery = Table(
    "broker_delivery",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("system", String(64), nullable=False),
    # stream, stream sequence and publish time: a re-created stream's sequence 1 is new
    Column("message_key", String(320), nullable=False),
    Column("load_id", Integer, ForeignKey("load.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("system", "message_key"),
)

# What a system sent, verbatim. Never modified: a changed record is a new version.
source_record = Table(
    "source_record",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("load_id", ForeignKey("load.id"), nullable=False),
    Column("system", String(64), nullable=False),
    Column("source_id", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("payload", Document, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    # the hybrid logical clock's stamp at intake (accord.hlc), fixed-width text that sorts
    # as the stamps do; NULL for records stored before the clock existed
    Column("hlc", String(24)),
    UniqueConstraint("system", "source_id", "version"),
    Index(None, "load_id"),  # a load's records, read to withdraw it
    Index(None, "system", "received_at"),  # a system's records received lately (health)
)

# A source record mapped into the canonical model, with the mapping version that did it.
canonical_record = Table(
    "canonical_record",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("source_record_id", ForeignKey("source_record.id"), nullable=False),
    Column("system", String(64), nullable=False),
    Column("source_id", String(256), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("mapping_version", String(64), nullable=False),
    Column("data", Document, nullable=False),
    Column("issues", Document, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # Re-mapping an unchanged source record with a new mapping adds a canonical record.
    UniqueConstraint("source_record_id", "mapping_version"),
)

# The current version of each (system, source id): the only mutable pointer on the way in.
record_head = Table(
    "record_head",
    metadata,
    Column("system", String(64), primary_key=True),
    Column("source_id", String(256), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("source_record_id", ForeignKey("source_record.id"), nullable=False),
    Column("canonical_record_id", ForeignKey("canonical_record.id"), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("load_id", ForeignKey("load.id"), nullable=False),
    Column("system", String(64), nullable=False),
    Column("source_id", String(256)),
    Column("location", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("reasons", Document, nullable=False),
    # sha256 of the raw text: the same bad row loaded again is not filed twice while open
    Column("content_hash", String(64), nullable=False),
    # open, replayed (stored by `replay_load_id`) or discarded (`note` says why)
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # the record's fields as read, when it could be read (a mapping fix can replay it)
    Column("fields", Document),
    # a steward's corrected fields, replayed instead of `fields`; the original stays
    Column("correction", Document),
    Column("corrected_by", String(200)),
    Column("corrected_at", UTCDateTime),
    Column("replay_load_id", ForeignKey("load.id")),
    Column("note", Text),
    Column("closed_by", String(200)),
    Column("closed_at", UTCDateTime),
    Index(None, "system", "status"),
    Index(None, "system", "content_hash"),
    Index(None, "load_id"),
    Index(None, "system", "created_at"),  # a system's entries filed lately (health)
    Index(None, "system", "source_id"),  # is a record in quarantine (linked-record orphans)
)

golden_record = Table(
    "golden_record",
    metadata,
    Column("golden_id", String(32), primary_key=True),
    Column("entity_type", String(32), nullable=False),
    # active, or merged (into `merged_into`), or retired (no members left)
    Column("status", String(16), nullable=False),
    Column("merged_into", String(32)),
    Column("display_name", Text, nullable=False),
    Column("search_text", Text, nullable=False),
    Column("data", Document, nullable=False),
    Column("lineage", Document, nullable=False),
    Column("member_count", Integer, nullable=False),
    # sha256 of data, lineage and members: a re-run rewrites only what changed.
    Column("fingerprint", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "status", "display_name"),
)

# A steward's pinned value of one field of a golden customer: it wins over every
# survivorship strategy at every rebuild, and follows the customer into a merge.
golden_override = Table(
    "golden_override",
    metadata,
    Column("golden_id", ForeignKey("golden_record.golden_id"), primary_key=True),
    Column("field", String(64), primary_key=True),
    Column("value", Document, nullable=False),
    Column("reason", Text, nullable=False),
    Column("set_by", String(200), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
)

# (system, source id) -> golden id, with the decision that put the link there.
crosswalk = Table(
    "crosswalk",
    metadata,
    Column("system", String(64), primary_key=True),
    Column("source_id", String(256), primary_key=True),
    Column("golden_id", ForeignKey("golden_record.golden_id"), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("score", Float),
    Column("evidence", Document, nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    # the golden id the record had before its last move: a split restores it if it can
    Column("previous_golden_id", String(32)),
    Index(None, "golden_id"),
)


def _pair_columns() -> list[Column[str]]:
    """Two records (system, source id each), the smaller key on the left."""
    return [
        Column("left_system", String(64), nullable=False),
        Column("left_source_id", String(256), nullable=False),
        Column("right_system", String(64), nullable=False),
        Column("right_source_id", String(256), nullable=False),
    ]


# Pairs the matcher was unsure of, or would not link because they contradict, waiting
# for a steward. A pair is stored once, its two records in sorted order.
match_review = Table(
    "match_review",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    *_pair_columns(),
    Column("probability", Float, nullable=False),
    Column("match_weight", Float),
    Column("reason", String(200), nullable=False),
    Column("explanation", Document, nullable=False),
    Column("status", String(16), nullable=False),  # open, decided, withdrawn
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("left_system", "left_source_id", "right_system", "right_source_id"),
    Index(None, "status", "probability"),
    Index(None, "right_system", "right_source_id"),  # a record's pairs, from either side
)

# A steward's decision about a pair, which every later resolve honours: `same` links the
# two records whatever the matcher says; `different` never lets them share a customer.
match_decision = Table(
    "match_decision",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    *_pair_columns(),
    Column("decision", String(16), nullable=False),  # same, different
    Column("note", Text, nullable=False),
    Column("decided_by", String(200), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    UniqueConstraint("left_system", "left_source_id", "right_system", "right_source_id"),
    Index(None, "right_system", "right_source_id"),
)

# What the learned engine learned at each resolve: the weights (m, u, prior), how it was
# trained, and the blocking report. The latest explains the current links.
match_model = Table(
    "match_model",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("project_digest", String(64), nullable=False),
    Column("params", Document, nullable=False),
    Column("blocking", Document, nullable=False),
)

# The match index: what incremental matching needs to find and score a record's
# candidates without reading every record. One entry per current record (its match
# features), its blocking keys and term keys as 64-bit hashes, and how many entries
# carry each key (block sizes, term frequencies, totals per column).
match_entry = Table(
    "match_entry",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("system", String(64), nullable=False),
    Column("source_id", String(256), nullable=False),
    Column("canonical_record_id", BigInteger, nullable=False),
    Column("features", Document, nullable=False),
    Column("digest", String(64), nullable=False),  # of the features and the match settings
    UniqueConstraint("system", "source_id"),
)

match_key = Table(
    "match_key",
    metadata,
    Column("key_hash", BigInteger, primary_key=True, autoincrement=False),
    Column("entry_id", BigInteger, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

match_count = Table(
    "match_count",
    metadata,
    Column("key_hash", BigInteger, primary_key=True, autoincrement=False),
    Column("entries", BigInteger, nullable=False),
)

# A record that belongs to a customer without being one: an order, an invoice, a ticket
# (docs/linked-records.md). It names its customer by the source id of the customer's
# record (`customer_system`, `customer_source_id`) and never by golden id: it is attached
# to a golden customer when read, through the crosswalk, so merges, splits and steward
# decisions move it with its customer without a write. One row per (system, kind, source
# id), replaced when its content or mapping changes; `payload` is the record as read.
linked_record = Table(
    "linked_record",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("system", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("source_id", String(256), nullable=False),
    Column("customer_system", String(64), nullable=False),
    Column("customer_source_id", String(256), nullable=False),
    Column("occurred_at", UTCDateTime),
    Column("amount", String(64)),  # a decimal as text, as written: never a float
    Column("currency", String(3)),
    Column("status", Text),
    Column("title", Text),
    Column("issues", Document, nullable=False),
    Column("payload", Document, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("mapping_version", String(64), nullable=False),
    Column("load_id", ForeignKey("load.id"), nullable=False),  # the load that stored it last
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("system", "kind", "source_id"),
    # a customer's records (crosswalk -> here); with `system`, orphans are counted per
    # system from the index alone
    Index(None, "customer_system", "customer_source_id", "system"),
)

# Links between golden records that are not merges: a person is a contact of an
# organization, an organization a subsidiary of another. `evidence` lists the source
# records and fields that say so.
relationship = Table(
    "relationship",
    metadata,
    Column("from_golden_id", String(32), primary_key=True),
    Column("to_golden_id", String(32), primary_key=True),
    Column("type", String(32), primary_key=True),
    Column("evidence", Document, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "to_golden_id"),
)

# Append-only and hash-chained: each entry carries the hash of the one before.
audit_log = Table(
    "audit_log",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject_id", String(256), nullable=False),
    Column("details", Document, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

app_user = Table(
    "app_user",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(150), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(32), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime),
)

user_session = Table(
    "user_session",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", ForeignKey("app_user.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

# A person's second factor, once confirmed: the TOTP secret (kept as is: checking a
# code needs it), when it was enrolled, and the last time step a code was taken for, so
# the same code is never taken twice. No row: no second factor.
user_mfa = Table(
    "user_mfa",
    metadata,
    Column("user_id", ForeignKey("app_user.id"), primary_key=True),
    Column("secret", String(64), nullable=False),
    Column("enrolled_at", UTCDateTime, nullable=False),
    Column("last_step", BigInteger),
)

# One-time recovery codes, stored as sha256 digests; a used code keeps its row.
mfa_recovery_code = Table(
    "mfa_recovery_code",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("app_user.id"), nullable=False),
    Column("code_hash", String(64), nullable=False),
    Column("used_at", UTCDateTime),
    UniqueConstraint("user_id", "code_hash"),
)

# A sign-in half done, or a second factor being set up: the password was right and a
# code is awaited (`verify`), or a new secret waits for its first code (`enrol`, at
# sign-in when the role requires MFA; `account`, by a signed-in person). Short-lived,
# bound to the user, found by the sha256 of a random token the browser holds.
mfa_challenge = Table(
    "mfa_challenge",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", ForeignKey("app_user.id"), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("secret", String(64)),
    Column("failures", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index(None, "user_id"),
)

# A key for a connected system (role `system`: it pushes and reads that system's
# records), or a monitoring key (role `monitor`: it reads the health figures), named by
# `system`.
api_key = Table(
    "api_key",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("system", String(64), nullable=False),
    Column("prefix", String(32), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
    Column("role", String(32), nullable=False, server_default="system"),
)

# The durable work queue between intake and matching: one row per record waiting to be
# matched, written in the transaction that stores its new version. A record changed
# again while it waits keeps its place in the queue (its id) and gets a new token; a
# worker leases rows, matches them and deletes them in the transaction that writes the
# result, only if the token is still the one it took (otherwise the row is matched again).
work_item = Table(
    "work_item",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("system", String(64), nullable=False),
    Column("source_id", String(256), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("token", String(32), nullable=False),
    Column("enqueued_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    # the token a full resolve saw when it started: rows still holding it are covered by
    # that resolve, which removes them when it commits
    Column("covered_token", String(32)),
    UniqueConstraint("system", "source_id"),
    Index(None, "entity_type", "id"),
)

# How long each record matched from the work queue waited, from its queue row's
# `enqueued_at` (stored and queued in one transaction: received) to the transaction that
# matched it and removed the row (golden): one row per record, written in that
# transaction by `queue.complete` / `remove_covered`, pruned after a day (`queue.KEEP_WAITS`).
# What integration health reads as the received-to-golden latency of the last hour.
match_wait = Table(
    "match_wait",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("system", String(64), nullable=False),
    Column("matched_at", UTCDateTime, nullable=False),
    Column("seconds", Float, nullable=False),
    Index(None, "matched_at"),
)

# The outbox (C4.1, C2.3): one row per change of a golden record, written in the
# transaction that made the change, so a change is delivered if and only if it happened.
# `data` is the golden values after the change and `sources` the system each value came
# from (for conflict policies); a merge or retirement carries neither: it is a tombstone.
golden_change = Table(
    "golden_change",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("golden_id", String(32), nullable=False),
    Column("change", String(16), nullable=False),  # created, updated, merged, retired
    Column("data", Document),
    Column("sources", Document),
    Column("fields", Document),  # the fields that changed; null when all of them did
    Column("merged_into", String(32)),
    # a repair for one target (`accord reconcile --repair`); null: a change for every target
    Column("target", String(64)),
    Column("changed_at", UTCDateTime, nullable=False),
    Index(None, "golden_id", "id"),
)

# How far each delivery target has taken the outbox (changes after `change_id` are still
# to be planned into deliveries for it), and which process delivers to it now: one at a
# time, so several workers never write the same change twice at once.
sync_cursor = Table(
    "sync_cursor",
    metadata,
    Column("target", String(64), primary_key=True),
    Column("change_id", BigInteger, nullable=False),
    Column("lease_owner", String(200)),
    Column("lease_until", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One change to deliver to one target, with its own state: pending (waiting for its
# turn or its next attempt at `due_at`), sent, or dead (given up; replayable). One
# customer's deliveries to a target go in the order of its changes.
sync_delivery = Table(
    "sync_delivery",
    metadata,
    Column("target", String(64), primary_key=True),
    Column("change_id", BigInteger, primary_key=True),
    Column("golden_id", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("last_status", Integer),  # the target's HTTP status, if it answered
    Column("last_error", Text),
    Column("outcome", Document),  # per target record: what was done (created, updated, ...)
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index(None, "target", "state", "change_id"),
    Index(None, "target", "state", "golden_id", "change_id"),
    Index(None, "target", "finished_at"),  # deliveries finished lately (health)
)

# What Accord knows of each record it writes in a target: the customer it belongs to,
# whether Accord created it or it is the target's own (a member of the customer), its
# version tag for conditional writes, and its fields as last seen (the base a conflict
# is detected against).
sync_record = Table(
    "sync_record",
    metadata,
    Column("target", String(64), primary_key=True),
    Column("record_id", String(256), primary_key=True),
    Column("golden_id", String(32), nullable=False),
    Column("origin", String(16), nullable=False),  # accord (created by Accord) or member
    Column("etag", String(200)),
    # JSON text, not a document column: a target may send back what jsonb cannot hold (\u0000)
    Column("fields", Text),
    Column("deleted", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(None, "target", "golden_id"),
)

# A field both Accord and a target changed since Accord last wrote it, and how the
# field's conflict policy settled it (C4.2); those left to a steward wait here.
sync_conflict = Table(
    "sync_conflict",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("target", String(64), nullable=False),
    Column("record_id", String(256), nullable=False),
    Column("golden_id", String(32), nullable=False),
    Column("change_id", BigInteger, nullable=False),
    Column("field", String(64), nullable=False),
    Column("ours", Text),  # JSON text, as sync_record.fields
    Column("theirs", Text),
    Column("policy", String(32), nullable=False),
    Column("kept", String(16), nullable=False),  # ours, theirs, or waiting (for a steward)
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_by", String(200)),  # the steward who settled a waiting one
    Column("decided_at", UTCDateTime),
    Index(None, "target", "kept"),
    Index(None, "target", "record_id"),  # each round reads its records' latest conflicts
)
