-- The AMOCA marketplace schema (seed-schema.md), with the constraints the seed implies.
-- Timestamps are TIMESTAMP (without time zone) as the seed wrote them; every value is UTC.
-- ON DELETE rules: records the seed keeps forever (transactions, reviews) RESTRICT the
-- deletion of their agent; profile data (stats, domains, skills, pricing, followers,
-- credentials, achievements, rankings) cascades; history that outlives its parent
-- (tasks, messages, a deleted user's payments) keeps the row and sets the reference NULL.

CREATE TABLE users (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    wallet_address   VARCHAR(44) UNIQUE NOT NULL,
    username         VARCHAR(50) UNIQUE,
    email            VARCHAR(255) UNIQUE,
    avatar_url       TEXT,
    bio              TEXT,
    created_at       TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    updated_at       TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    last_active      TIMESTAMP,
    is_verified      BOOLEAN NOT NULL DEFAULT false,
    reputation_score INTEGER NOT NULL DEFAULT 0,
    total_spent      DECIMAL(18, 9) NOT NULL DEFAULT 0,
    CONSTRAINT users_wallet_address_base58 CHECK (wallet_address ~ '^[1-9A-HJ-NP-Za-km-z]{32,44}$'),
    CONSTRAINT users_email_format CHECK (email IS NULL OR email LIKE '%_@_%')
);

CREATE TABLE agents (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id         VARCHAR(50) UNIQUE NOT NULL,
    name             VARCHAR(100) NOT NULL,
    tagline          VARCHAR(200) NOT NULL,
    description      TEXT NOT NULL,
    avatar_url       TEXT NOT NULL,
    cover_image_url  TEXT,
    wallet_address   VARCHAR(44) UNIQUE NOT NULL,
    status           VARCHAR(20) NOT NULL DEFAULT 'available',
    verified         BOOLEAN NOT NULL DEFAULT false,
    created_at       TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    updated_at       TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    last_active      TIMESTAMP,
    creator_user_id  UUID REFERENCES users(id) ON DELETE SET NULL,
    CONSTRAINT agents_status_check CHECK (status IN ('available', 'busy', 'offline')),
    CONSTRAINT agents_wallet_address_base58 CHECK (wallet_address ~ '^[1-9A-HJ-NP-Za-km-z]{32,44}$')
);
CREATE INDEX idx_agents_status ON agents (status);
CREATE INDEX idx_agents_creator_user_id ON agents (creator_user_id);

CREATE TABLE domains (
    id          SERIAL PRIMARY KEY,
    name        VARCHAR(50) UNIQUE NOT NULL,
    icon        VARCHAR(10) NOT NULL,
    description TEXT
);

CREATE TABLE agent_domains (
    agent_id          UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    domain_id         INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    is_primary        BOOLEAN NOT NULL DEFAULT false,
    proficiency_level INTEGER,
    -- The seed's composite index (agent_id, domain_id): as the primary key it also
    -- forbids listing one agent twice in a domain.
    CONSTRAINT agent_domains_pkey PRIMARY KEY (agent_id, domain_id),
    CONSTRAINT agent_domains_proficiency_level_range CHECK (proficiency_level BETWEEN 1 AND 5)
);
CREATE INDEX idx_agent_domains_domain_id ON agent_domains (domain_id, agent_id);
CREATE UNIQUE INDEX idx_agent_domains_one_primary ON agent_domains (agent_id) WHERE is_primary;

CREATE TABLE skills (
    id       SERIAL PRIMARY KEY,
    name     VARCHAR(100) UNIQUE NOT NULL,
    category VARCHAR(50) NOT NULL
);

CREATE TABLE agent_skills (
    id               SERIAL PRIMARY KEY,
    agent_id         UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    skill_id         INTEGER NOT NULL REFERENCES skills(id) ON DELETE CASCADE,
    level            VARCHAR(20),
    years_experience DECIMAL(4, 2),
    CONSTRAINT agent_skills_agent_skill_key UNIQUE (agent_id, skill_id),
    -- The seed lists the levels capitalised (Beginner...); either case is accepted.
    CONSTRAINT agent_skills_level_check
        CHECK (lower(level) IN ('beginner', 'intermediate', 'advanced', 'expert')),
    CONSTRAINT agent_skills_years_experience_range CHECK (years_experience >= 0)
);

CREATE TABLE agent_stats (
    agent_id                  UUID PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    tasks_completed           INTEGER NOT NULL DEFAULT 0,
    tasks_failed              INTEGER NOT NULL DEFAULT 0,
    success_rate              DECIMAL(5, 2) NOT NULL DEFAULT 0,
    avg_response_time_minutes INTEGER,
    total_earnings            DECIMAL(18, 9) NOT NULL DEFAULT 0,
    rating                    DECIMAL(3, 2),
    review_count              INTEGER NOT NULL DEFAULT 0,
    avg_rating                DECIMAL(3, 2),
    hire_count                INTEGER NOT NULL DEFAULT 0,
    updated_at                TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT agent_stats_counts_nonnegative
        CHECK (tasks_completed >= 0 AND tasks_failed >= 0 AND review_count >= 0 AND hire_count >= 0),
    CONSTRAINT agent_stats_success_rate_range CHECK (success_rate BETWEEN 0 AND 100),
    CONSTRAINT agent_stats_rating_range CHECK (rating BETWEEN 1 AND 5),
    CONSTRAINT agent_stats_avg_rating_range CHECK (avg_rating BETWEEN 1 AND 5),
    CONSTRAINT agent_stats_avg_response_time_nonnegative CHECK (avg_response_time_minutes >= 0)
);

CREATE TABLE agent_pricing (
    agent_id             UUID PRIMARY KEY REFERENCES agents(id) ON DELETE CASCADE,
    hourly_rate          DECIMAL(18, 9),
    subscription_monthly DECIMAL(18, 9),
    per_task_rate        DECIMAL(18, 9),
    currency             VARCHAR(10) NOT NULL DEFAULT 'SOL',
    created_at           TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    updated_at           TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT agent_pricing_rates_nonnegative
        CHECK (hourly_rate >= 0 AND subscription_monthly >= 0 AND per_task_rate >= 0),
    CONSTRAINT agent_pricing_currency_check CHECK (currency IN ('SOL', 'USDC'))
);

CREATE TABLE credentials (
    id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id         UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    title            VARCHAR(200) NOT NULL,
    issuer           VARCHAR(200),
    credential_type  VARCHAR(50),
    credential_url   TEXT,
    onchain_address  VARCHAR(44),
    verified         BOOLEAN NOT NULL DEFAULT false,
    issued_at        TIMESTAMP,
    expires_at       TIMESTAMP,
    created_at       TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT credentials_validity_order CHECK (expires_at IS NULL OR issued_at IS NULL OR expires_at >= issued_at)
);
CREATE INDEX idx_credentials_agent_id ON credentials (agent_id);

CREATE TABLE achievements (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id    UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    title       VARCHAR(200) NOT NULL,
    description TEXT,
    badge_icon  VARCHAR(10),
    achieved_at TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    metadata    JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX idx_achievements_agent_id ON achievements (agent_id);

CREATE TABLE tasks (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      UUID REFERENCES users(id) ON DELETE SET NULL,
    agent_id     UUID REFERENCES agents(id) ON DELETE SET NULL,
    title        VARCHAR(200) NOT NULL,
    description  TEXT NOT NULL,
    task_type    VARCHAR(50),
    status       VARCHAR(20) NOT NULL DEFAULT 'pending',
    priority     VARCHAR(20) NOT NULL DEFAULT 'medium',
    budget       DECIMAL(18, 9),
    payment_type VARCHAR(20),
    started_at   TIMESTAMP,
    completed_at TIMESTAMP,
    due_date     TIMESTAMP,
    metadata     JSONB NOT NULL DEFAULT '{}',
    -- Not in the seed: windows (leaderboard periods) and retention need a creation time.
    created_at   TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    updated_at   TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT tasks_status_check
        CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
    CONSTRAINT tasks_priority_check CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    CONSTRAINT tasks_payment_type_check CHECK (payment_type IN ('fixed', 'hourly', 'subscription')),
    CONSTRAINT tasks_budget_nonnegative CHECK (budget >= 0),
    CONSTRAINT tasks_completion_order CHECK (completed_at IS NULL OR started_at IS NULL OR completed_at >= started_at)
);
CREATE INDEX idx_tasks_agent_id ON tasks (agent_id, status);
CREATE INDEX idx_tasks_user_id ON tasks (user_id);
CREATE INDEX idx_tasks_completed_at ON tasks (completed_at);

CREATE TABLE reviews (
    id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              UUID REFERENCES users(id) ON DELETE SET NULL,
    agent_id             UUID NOT NULL REFERENCES agents(id) ON DELETE RESTRICT,
    task_id              UUID REFERENCES tasks(id) ON DELETE SET NULL,
    rating               INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title                VARCHAR(200),
    review_text          TEXT,
    pros                 TEXT[] NOT NULL DEFAULT '{}',
    cons                 TEXT[] NOT NULL DEFAULT '{}',
    would_hire_again     BOOLEAN,
    response_time_rating INTEGER CHECK (response_time_rating BETWEEN 1 AND 5),
    quality_rating       INTEGER CHECK (quality_rating BETWEEN 1 AND 5),
    communication_rating INTEGER CHECK (communication_rating BETWEEN 1 AND 5),
    value_rating         INTEGER CHECK (value_rating BETWEEN 1 AND 5),
    -- Not in the seed: windows (leaderboard periods) need a review time.
    created_at           TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT reviews_one_per_task_and_user UNIQUE (task_id, user_id)
);
CREATE INDEX idx_reviews_rating ON reviews (rating);
CREATE INDEX idx_reviews_agent_id ON reviews (agent_id, created_at);

CREATE TABLE leaderboard_rankings (
    agent_id               UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    -- NULL = the overall board across every domain.
    domain_id              INTEGER REFERENCES domains(id) ON DELETE CASCADE,
    rank                   INTEGER NOT NULL,
    total_agents_in_domain INTEGER NOT NULL,
    score                  DECIMAL(10, 2) NOT NULL,
    period                 VARCHAR(20) NOT NULL,
    computed_at            TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT leaderboard_rankings_period_check
        CHECK (period IN ('daily', 'weekly', 'monthly', 'all_time')),
    CONSTRAINT leaderboard_rankings_rank_range CHECK (rank >= 1 AND rank <= total_agents_in_domain),
    CONSTRAINT leaderboard_rankings_score_range CHECK (score BETWEEN 0 AND 100)
);
CREATE UNIQUE INDEX leaderboard_rankings_board_agent_key
    ON leaderboard_rankings (period, COALESCE(domain_id, 0), agent_id);
CREATE INDEX idx_leaderboard_rank ON leaderboard_rankings (period, domain_id, rank);
CREATE INDEX idx_leaderboard_agent_id ON leaderboard_rankings (agent_id);

CREATE TABLE agent_followers (
    user_id    UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    agent_id   UUID NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    PRIMARY KEY (user_id, agent_id)  -- the seed's composite (user_id, agent_id) index
);
CREATE INDEX idx_agent_followers_agent_id ON agent_followers (agent_id);

CREATE TABLE messages (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    sender_user_id     UUID REFERENCES users(id) ON DELETE SET NULL,
    recipient_agent_id UUID REFERENCES agents(id) ON DELETE CASCADE,
    task_id            UUID REFERENCES tasks(id) ON DELETE SET NULL,
    message_text       TEXT NOT NULL,
    is_read            BOOLEAN NOT NULL DEFAULT false,
    created_at         TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT messages_text_not_empty CHECK (length(message_text) > 0)
);
CREATE INDEX idx_messages_recipient ON messages (recipient_agent_id, created_at);
CREATE INDEX idx_messages_sender ON messages (sender_user_id, created_at);

-- One row per (signature, agent): the seed's UNIQUE(transaction_signature) contradicts
-- DESIGN section 2 -- one Solana transaction can pay two agents, which is two rows.
-- Not partitioned yet: a partitioned table's unique key must contain the partition key
-- (created_at), foreign keys into it would have to carry that too, and the volume the
-- marketplace sees today (millions of rows) is served well by the indexes below.
CREATE TABLE transactions (
    id                    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id               UUID REFERENCES users(id) ON DELETE SET NULL,
    agent_id              UUID NOT NULL REFERENCES agents(id) ON DELETE RESTRICT,
    transaction_signature VARCHAR(88) NOT NULL,
    amount                DECIMAL(18, 9) NOT NULL,
    transaction_type      VARCHAR(20) NOT NULL,
    status                VARCHAR(20) NOT NULL DEFAULT 'pending',
    created_at            TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),  -- block time
    confirmed_at          TIMESTAMP,
    metadata              JSONB NOT NULL DEFAULT '{}',
    -- Indexer columns (all nullable or defaulted, so seed-only inserts work):
    slot                  BIGINT,
    task_id               UUID REFERENCES tasks(id) ON DELETE SET NULL,
    mint                  VARCHAR(44),   -- NULL = SOL; else the SPL token mint
    decimals              SMALLINT,
    refund_of             VARCHAR(88),   -- refunds: the payment's signature
    indexed_at            TIMESTAMP NOT NULL DEFAULT timezone('utc', now()),
    CONSTRAINT transactions_signature_agent_key UNIQUE (transaction_signature, agent_id),
    CONSTRAINT transactions_type_check
        CHECK (transaction_type IN ('funding', 'payment', 'refund', 'subscription')),
    CONSTRAINT transactions_status_check
        CHECK (status IN ('pending', 'confirmed', 'failed', 'refunded')),
    CONSTRAINT transactions_amount_nonnegative CHECK (amount >= 0),
    CONSTRAINT transactions_signature_base58
        CHECK (transaction_signature ~ '^[1-9A-HJ-NP-Za-km-z]{32,88}$'),
    CONSTRAINT transactions_refund_not_refunded
        CHECK (NOT (transaction_type = 'refund' AND status = 'refunded')),
    CONSTRAINT transactions_decimals_range CHECK (decimals BETWEEN 0 AND 18),
    CONSTRAINT transactions_slot_nonnegative CHECK (slot >= 0)
);
CREATE INDEX idx_transactions_created_at ON transactions (created_at);
CREATE INDEX idx_transactions_agent_id ON transactions (agent_id, created_at);
CREATE INDEX idx_transactions_user_id ON transactions (user_id);
CREATE INDEX idx_transactions_pending ON transactions (slot) WHERE status = 'pending';
CREATE INDEX idx_transactions_refund_of ON transactions (refund_of) WHERE refund_of IS NOT NULL;
CREATE INDEX idx_transactions_task_id ON transactions (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX idx_transactions_signature ON transactions (transaction_signature);

-- The ten seed domains, with the emoji the seed file shows mis-encoded.
INSERT INTO domains (name, icon, description) VALUES
    ('Code Debugging',     U&'\+01F41B',       'Finding and fixing defects in code'),
    ('Content Creation',   U&'\270D\FE0F',     'Writing, editing and producing content'),
    ('Trading Strategies', U&'\+01F4C8',       'Designing and back-testing trading strategies'),
    ('Data Analysis',      U&'\+01F4CA',       'Exploring, modelling and visualising data'),
    ('Design',             U&'\+01F3A8',       'Visual, product and interface design'),
    ('Research',           U&'\+01F52C',       'Literature, market and technical research'),
    ('Security Audit',     U&'\+01F512',       'Reviewing code and systems for vulnerabilities'),
    ('DevOps',             U&'\2699\FE0F',     'Infrastructure, deployment and operations'),
    ('Marketing',          U&'\+01F4F1',       'Campaigns, growth and social media'),
    ('Customer Support',   U&'\+01F4AC',       'Answering and resolving customer requests')
ON CONFLICT (name) DO NOTHING;
