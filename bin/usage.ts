/** `switchboard --help`: the commands and every environment variable (README "Configuration" has the details). */
export const USAGE = `usage: switchboard <command> [options]

commands:
  start                       run one node (the default command)
  token --user U --device D --kind pc|mobile [--os ios|android|harmony|web] [--ttl 1h] [--bot]
                              print a client token (HS256, PROTOCOL.md section 2) signed with
                              SWITCHBOARD_JWT_SECRET, else with <data dir>/jwt-secret;
                              --ttl: seconds or a number with s, m, h or d (default 1h, at most 365d);
                              --bot: claim "bot": true (PC only: a bot or bridge never makes the PC active)
  send --to U --text T [--title T] [--from F] [--id ID] [--url URL]
                              send a message through the HTTP API (POST /v1/messages) with
                              SWITCHBOARD_API_KEY, else <data dir>/api-key; the URL defaults to
                              SWITCHBOARD_URL, else http://SWITCHBOARD_HOST:SWITCHBOARD_PORT
  help, --help, -h            this text

environment (see README.md, "Configuration"):
  listener      SWITCHBOARD_HOST, SWITCHBOARD_PORT, SWITCHBOARD_URL (token/send only)
  cluster       SWITCHBOARD_NATS_URL, SWITCHBOARD_NATS_USER, SWITCHBOARD_NATS_PASSWORD, SWITCHBOARD_NATS_TOKEN,
                SWITCHBOARD_NATS_CREDS_FILE, SWITCHBOARD_NATS_NKEY_SEED_FILE, SWITCHBOARD_NATS_TLS_CA_FILE,
                SWITCHBOARD_NATS_TLS_CERT_FILE, SWITCHBOARD_NATS_TLS_KEY_FILE, SWITCHBOARD_NATS_REPLICAS,
                SWITCHBOARD_NATS_CONNECT_TIMEOUT_MS, SWITCHBOARD_NODE_ID, SWITCHBOARD_ROLES, SWITCHBOARD_PARTITIONS,
                SWITCHBOARD_SUBJECT_PREFIX
  state         SWITCHBOARD_DATA_DIR, SWITCHBOARD_DATA_DIR_MIN_FREE_BYTES, SWITCHBOARD_JWT_SECRET, SWITCHBOARD_API_KEY
  routing       SWITCHBOARD_ACK_TIMEOUT_MS, SWITCHBOARD_PRESENCE_TTL_MS, SWITCHBOARD_PUSH_DELAY_MS,
                SWITCHBOARD_HEARTBEAT_MS, SWITCHBOARD_PASSIVATE_AFTER_MS, SWITCHBOARD_DEDUPE_WINDOW_MS,
                SWITCHBOARD_REPLAY_GRACE_MS, SWITCHBOARD_DECISION_HISTORY_BYTES, SWITCHBOARD_DECISION_SAVE_MS,
                SWITCHBOARD_HOLD_TTL_SECONDS, SWITCHBOARD_HOLD_MAX
  clients       SWITCHBOARD_SEND_BUFFER_BYTES, SWITCHBOARD_FRAME_RATE, SWITCHBOARD_MAX_INFLIGHT
  vendors       SWITCHBOARD_APNS_ENDPOINT, SWITCHBOARD_APNS_KEY_FILE, SWITCHBOARD_APNS_KEY_ID,
                SWITCHBOARD_APNS_TEAM_ID, SWITCHBOARD_APNS_TOPIC, SWITCHBOARD_FCM_SERVICE_ACCOUNT_FILE,
                SWITCHBOARD_FCM_ENDPOINT, SWITCHBOARD_HMS_APP_ID, SWITCHBOARD_HMS_CLIENT_ID,
                SWITCHBOARD_HMS_CLIENT_SECRET, SWITCHBOARD_HMS_AUTH_ENDPOINT, SWITCHBOARD_HMS_PUSH_ENDPOINT,
                SWITCHBOARD_HMS_BADGE_CLASS,
                SWITCHBOARD_WEBPUSH_VAPID_PUBLIC_KEY, SWITCHBOARD_WEBPUSH_VAPID_PRIVATE_KEY,
                SWITCHBOARD_WEBPUSH_SUBJECT, SWITCHBOARD_APPS_FILE, SWITCHBOARD_PUSH_MAX_ATTEMPTS,
                SWITCHBOARD_SENDER_THREADS, SWITCHBOARD_WEBPUSH_ALLOWED_HOSTS, SWITCHBOARD_TOKEN_MAX_AGE_DAYS
  operations    SWITCHBOARD_SHUTDOWN_TIMEOUT_MS, SWITCHBOARD_SHUTDOWN_DELAY_MS, SWITCHBOARD_LOG_LEVEL,
                SWITCHBOARD_SUMMARY_INTERVAL_MS, SWITCHBOARD_PLAYGROUND, SWITCHBOARD_HEAP_GROWTH_PERCENT

With SWITCHBOARD_NATS_URL unset, start runs every role on the embedded bus.`;
