//! Who may use the service and what a request may name: bearer tokens mapped to
//! tenants (`serve --auth-tokens FILE`), the interceptor that checks them on every RPC,
//! and the limits on call ids.
//!
//! A token file has one `TOKEN TENANT` pair a line; blank lines and lines starting with
//! `#` are skipped. A line `cert:NAME TENANT` maps a client certificate instead (mutual
//! TLS, `--tls-client-ca`): a certificate whose subjectAltName DNS names or subject common
//! name include `NAME` authenticates as `TENANT` without a token. A malformed file is
//! refused with its line number, never its text (a line may hold a token). The file is
//! read at start and again on SIGHUP; a reload that fails keeps the tokens in use.
//!
//! Lines `audiohook:API_KEY TENANT`, `twilio:AUTH_TOKEN TENANT` and `fork:USER TENANT` map
//! a WebSocket media client's credential, once its protocol has proved it (`ws.*`
//! settings), to the tenant whose calls its media joins; without such a line a media call
//! belongs to `security.media_tenant` as AudioSocket's do.
//!
//! A request with both a token and a mapped certificate must name one tenant with both;
//! a token that is wrong, or that names another tenant than the certificate, is refused
//! whatever the certificate says.
//!
//! Calls are namespaced by tenant inside [`super::legs::Calls`]: tenant B's call id `X`
//! is another call than tenant A's `X`, so B can neither watch, close nor join A's call,
//! and B's answer for A's id is the answer for an id that exists nowhere.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use tonic::{Request, Status};

use super::status::{status, ServerError};

/// A tenant's name, as the token file gives it.
pub type Tenant = Arc<str>;

/// Things in flight per tenant (calls, recordings), each counted until its
/// [`TenantSlot`] drops.
#[derive(Clone, Debug, Default)]
pub struct TenantCounts(Arc<Mutex<HashMap<Tenant, usize>>>);

impl TenantCounts {
    /// One more of `tenant`'s if it has fewer than `max` in flight; `None` otherwise.
    pub fn take(&self, tenant: &Tenant, max: usize) -> Option<TenantSlot> {
        let mut counts = self.lock();
        let n = counts.entry(tenant.clone()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(TenantSlot {
            counts: self.clone(),
            tenant: tenant.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Tenant, usize>> {
        // A panic while holding the lock leaves plain counts behind.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One of a tenant's things in flight, counted until dropped.
#[derive(Debug)]
pub struct TenantSlot {
    counts: TenantCounts,
    tenant: Tenant,
}

impl Drop for TenantSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.tenant);
            }
        }
    }
}

/// Longest call id accepted, bytes.
pub const MAX_CALL_ID_BYTES: usize = 128;
/// How much of a refused id an error shows, characters.
const SHOWN_ID_CHARS: usize = 32;
/// Shortest token accepted, bytes (a guessable token is no lock).
pub const MIN_TOKEN_BYTES: usize = 16;
/// Longest tenant name, bytes.
const MAX_TENANT_BYTES: usize = 64;

/// Security settings of the service; the default is an open service (no tokens, no TLS)
/// that redacts every number (`security.redact_all_numbers`, on by default).
#[derive(Clone, Debug)]
pub struct SecurityConfig {
    /// Token file (`TOKEN TENANT` lines); `None`: no authentication.
    pub auth_tokens: Option<PathBuf>,
    /// Calls in flight per tenant at most (with tokens only); `None`: only `--max-calls`.
    pub tenant_max_calls: Option<usize>,
    /// `AnalyzeRecording` calls in flight per tenant at most (with tokens only); `None`:
    /// only `server.max_recordings`.
    pub tenant_max_recordings: Option<usize>,
    /// The tenant that owns calls arriving over AudioSocket and WebSocket media, which
    /// carry no token; `None`: no tenant, so with tokens no RPC can reach them.
    pub media_tenant: Option<String>,
    /// Every call redacts every number, and no client can turn redaction off
    /// ([`crate::contact::finish::FinishOptions::on_server`]); the default. False: the
    /// cue, length and payment-window rules alone, and a client may ask for more or none.
    pub redact_all_numbers: bool,
    /// The payment window of every call, ms (`security.payment_window_s`); `None`: the
    /// default ([`crate::contact::finish::PAYMENT_WINDOW_MS`]).
    pub payment_window_ms: Option<u32>,
    /// TLS for gRPC, and with it `wss://` for WebSocket media; `None`: plaintext.
    pub tls: Option<TlsFiles>,
    /// Serve plain `ws://` WebSocket media even with `tls` (a TLS-terminating proxy in
    /// front).
    pub ws_plaintext: bool,
    /// Serve AudioSocket over TLS with `tls`'s certificate (for a TLS-terminating proxy
    /// such as stunnel beside Asterisk); needs `tls`.
    pub audiosocket_tls: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            // fail closed: every number goes unless the operator says otherwise
            redact_all_numbers: true,
            payment_window_ms: None,
            auth_tokens: None,
            tenant_max_calls: None,
            tenant_max_recordings: None,
            media_tenant: None,
            tls: None,
            ws_plaintext: false,
            audiosocket_tls: false,
        }
    }
}

/// PEM files of `serve --tls-cert/--tls-key/--tls-client-ca`.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// CA whose client certificates are required; `None`: clients need none.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The rustls settings of the gRPC listener; an unreadable file is named.
    pub fn server_config(&self) -> anyhow::Result<tonic::transport::ServerTlsConfig> {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let read = |flag: &str, p: &Path| {
            std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {flag} {}: {e}", p.display()))
        };
        let identity = Identity::from_pem(
            read("--tls-cert", &self.cert)?,
            read("--tls-key", &self.key)?,
        );
        let mut cfg = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            cfg = cfg.client_ca_root(Certificate::from_pem(read("--tls-client-ca", ca)?));
        }
        Ok(cfg)
    }

    /// What the start line says.
    pub fn describe(&self) -> String {
        match &self.client_ca {
            Some(ca) => format!(
                "TLS on ({}), client certificates signed by {} required",
                self.cert.display(),
                ca.display()
            ),
            None => format!("TLS on ({})", self.cert.display()),
        }
    }
}

/// Whether `b` is a byte that call ids may hold: letters, digits and `. _ : @ + = -`
/// (Twilio `CA…` call SIDs, UUIDs of Genesys conversations, AudioSocket and FreeSWITCH,
/// SIP Call-IDs such as `a84b4c76e66710@pc33.example.com`).
fn call_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'+' | b'=' | b'-')
}

/// At most the first [`SHOWN_ID_CHARS`] characters of untrusted text, for an error.
pub fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOWN_ID_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Checks a call id a client gave (an empty one is the caller's business: some RPCs
/// make one up, others require it).
pub fn check_call_id(id: &str) -> Result<(), ServerError> {
    let why = if id.len() > MAX_CALL_ID_BYTES {
        "too long"
    } else if !id.bytes().all(call_id_byte) {
        "a character outside A-Z a-z 0-9 . _ : @ + = -"
    } else {
        return Ok(());
    };
    Err(ServerError::BadCallId {
        shown: shown(id),
        bytes: id.len(),
        why,
    })
}

/// A call id the service accepts made from any text (e.g. a file name): characters
/// outside the alphabet become `_`, and it is cut to [`MAX_CALL_ID_BYTES`].
pub fn call_id_from(text: &str) -> String {
    let mut id: String = text
        .bytes()
        .map(|b| if call_id_byte(b) { b as char } else { '_' })
        .collect();
    id.truncate(MAX_CALL_ID_BYTES);
    id
}

/// Why a token file was refused. Names lines, never their text.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("token file {path}, line {line}: {why}")]
    Line {
        path: PathBuf,
        line: usize,
        why: &'static str,
    },
    #[error("token file {path}: no tokens and no certificates (every request would be refused)")]
    Empty { path: PathBuf },
}

/// Why a token file whose last line has no newline is refused (see [`Tokens::parse`]).
const UNENDED_LAST_LINE: &str = "the last line does not end with a newline: the file may be \
     only partly written (write a new file and rename it into place)";

/// The prefix of a token file line that maps a client certificate, not a token.
const CERT_PREFIX: &str = "cert:";
/// Longest media credential of an `audiohook:`, `twilio:` or `fork:` line, bytes.
const MAX_MEDIA_ID_BYTES: usize = 256;

/// The WebSocket media protocols whose proved credentials a token file can map to tenants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// An AudioHook `X-API-KEY` (signed, where it has a client secret).
    AudioHook,
    /// The Twilio auth token that verified the `X-Twilio-Signature`.
    Twilio,
    /// The user name of the audio fork's accepted HTTP Basic credentials.
    Fork,
}

impl MediaKind {
    const ALL: [MediaKind; 3] = [MediaKind::AudioHook, MediaKind::Twilio, MediaKind::Fork];

    /// Its token file prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            MediaKind::AudioHook => "audiohook:",
            MediaKind::Twilio => "twilio:",
            MediaKind::Fork => "fork:",
        }
    }
}

/// A WebSocket media client's credential, as its protocol proved it before the upgrade.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaCredential {
    pub kind: MediaKind,
    /// The API key, auth token or user name (a secret for the first two: never logged).
    pub id: String,
}

impl std::fmt::Debug for MediaCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaCredential({:?}, [hidden])", self.kind)
    }
}
/// Longest certificate name of a `cert:NAME` line, bytes (a DNS name's limit).
const MAX_CERT_NAME_BYTES: usize = 253;

/// The tokens of a token file, each with its tenant, and the client certificate names
/// mapped to tenants. Its `Debug` shows counts alone (the file holds secrets).
pub struct Tokens {
    entries: Vec<(Vec<u8>, Tenant)>,
    certs: Vec<(String, Tenant)>,
    media: Vec<(MediaKind, Vec<u8>, Tenant)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tokens({} tokens, {} certificate names, {} media credentials)",
            self.entries.len(),
            self.certs.len(),
            self.media.len()
        )
    }
}

/// What a client certificate's names say of its tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertTenant {
    /// None of its names is in the file.
    Unmapped,
    /// Its mapped names all name this tenant.
    Tenant(Tenant),
    /// Its names map to two or more tenants: refused.
    Ambiguous,
}

/// What the first field of a token file's line is, by its prefix.
#[derive(Clone, Copy)]
enum LineKey<'a> {
    /// A bearer token.
    Token(&'a str),
    /// `cert:NAME`: a client certificate name.
    Cert(&'a str),
    /// `twilio:`, `audiohook:` or `fork:` and a WebSocket media credential.
    Media(MediaKind, &'a str),
}

impl<'a> LineKey<'a> {
    fn of(field: &'a str) -> Self {
        if let Some(name) = field.strip_prefix(CERT_PREFIX) {
            return LineKey::Cert(name);
        }
        MediaKind::ALL
            .iter()
            .find_map(|&k| {
                field
                    .strip_prefix(k.prefix())
                    .map(|id| LineKey::Media(k, id))
            })
            .unwrap_or(LineKey::Token(field))
    }
}

/// What [`valid_tenant_name`] asks, as its errors say it.
pub const TENANT_NAME_RULE: &str = "tenant name: at most 64 of A-Z a-z 0-9 . _ - expected";

/// A tenant name: at most 64 of A-Z a-z 0-9 . _ - (token files and `security.media_tenant`).
pub fn valid_tenant_name(name: &str) -> bool {
    name.len() <= MAX_TENANT_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Tokens {
    /// Parses a token file's text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TokenFileError> {
        let err = |line: usize, why: &'static str| TokenFileError::Line {
            path: path.to_path_buf(),
            line,
            why,
        };
        // A file caught half-written (a reload while an editor or a deploy tool writes it
        // in place) may end inside a line: `T2 acme-eu` cut to `T2 acme` would give T2 to
        // another tenant, and every line after the cut would be gone. Every line must end.
        if !text.is_empty() && !text.ends_with('\n') {
            return Err(err(text.lines().count(), UNENDED_LAST_LINE));
        }
        let mut entries: Vec<(Vec<u8>, Tenant)> = Vec::new();
        let mut certs: Vec<(String, Tenant)> = Vec::new();
        let mut media: Vec<(MediaKind, Vec<u8>, Tenant)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [token, tenant] = fields[..] else {
                return Err(err(
                    i + 1,
                    "expected `TOKEN TENANT` or `cert:NAME TENANT`, two fields",
                ));
            };
            let key = LineKey::of(token);
            // The key's own checks first, then the tenant's, so the error names the first
            // fault of the line.
            let fault = match key {
                LineKey::Cert(name) if name.is_empty() || name.len() > MAX_CERT_NAME_BYTES => {
                    Some("certificate name: 1 to 253 characters expected")
                }
                LineKey::Cert(name) if certs.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) => {
                    Some("the same certificate name is on an earlier line")
                }
                LineKey::Media(_, id) if id.is_empty() || id.len() > MAX_MEDIA_ID_BYTES => {
                    Some("media credential: 1 to 256 bytes expected")
                }
                LineKey::Media(kind, id)
                    if media
                        .iter()
                        .any(|(k, m, _)| *k == kind && m == id.as_bytes()) =>
                {
                    Some("the same media credential is on an earlier line")
                }
                LineKey::Token(t) if t.len() < MIN_TOKEN_BYTES => {
                    Some("token shorter than 16 characters")
                }
                _ if !valid_tenant_name(tenant) => Some(TENANT_NAME_RULE),
                LineKey::Token(t) if entries.iter().any(|(e, _)| e == t.as_bytes()) => {
                    Some("the same token is on an earlier line")
                }
                _ => None,
            };
            if let Some(why) = fault {
                return Err(err(i + 1, why));
            }
            let tenant = Tenant::from(tenant);
            match key {
                LineKey::Token(t) => entries.push((t.as_bytes().to_vec(), tenant)),
                LineKey::Cert(name) => certs.push((name.to_string(), tenant)),
                LineKey::Media(kind, id) => media.push((kind, id.as_bytes().to_vec(), tenant)),
            }
        }
        if entries.is_empty() && certs.is_empty() {
            return Err(TokenFileError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            entries,
            certs,
            media,
        })
    }

    /// Reads and parses a token file.
    pub fn read(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|error| TokenFileError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// The tenant of `token`. Every entry is compared in full, in time that depends on
    /// lengths only, so timing tells nothing of how much of a token was right.
    pub fn tenant(&self, token: &[u8]) -> Option<Tenant> {
        let entries = self
            .entries
            .iter()
            .map(|(t, tenant)| (t.as_slice(), tenant));
        constant_time_find(entries, token).cloned()
    }

    /// The tenant of a client certificate with these names (its DNS names and common
    /// names, [`cert_names`]); names compare without regard to ASCII case.
    pub fn cert_tenant(&self, names: &[String]) -> CertTenant {
        let mut found = CertTenant::Unmapped;
        for (name, tenant) in &self.certs {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                continue;
            }
            found = match found {
                CertTenant::Unmapped => CertTenant::Tenant(tenant.clone()),
                CertTenant::Tenant(t) if t == *tenant => CertTenant::Tenant(t),
                _ => CertTenant::Ambiguous,
            };
        }
        found
    }

    /// The tenant of a client certificate (the leaf of its chain, DER) by its names; no
    /// parsing when the file maps no certificate at all.
    pub fn leaf_tenant(&self, leaf: &[u8]) -> CertTenant {
        if self.certs.is_empty() {
            return CertTenant::Unmapped;
        }
        self.cert_tenant(&cert_names(leaf))
    }

    /// The tenant a WebSocket media client's proved credential is mapped to, if any. Every
    /// line of its kind is compared in full, in time that depends on lengths only.
    pub fn media_tenant(&self, credential: &MediaCredential) -> Option<Tenant> {
        let of_kind = self.media.iter().filter(|(k, _, _)| *k == credential.kind);
        let entries = of_kind.map(|(_, id, tenant)| (id.as_slice(), tenant));
        constant_time_find(entries, credential.id.as_bytes()).cloned()
    }

    /// How many media credentials are mapped.
    pub fn media_credentials(&self) -> usize {
        self.media.len()
    }

    /// What the file holds, counts only, for the start and reload lines.
    pub fn summary(&self) -> String {
        format!(
            "{} tokens, {} client certificate names and {} media credentials",
            self.len(),
            self.cert_names(),
            self.media_credentials()
        )
    }

    /// How many media lines of each kind name a credential that `accepted` says its
    /// protocol does not accept: such a line can never match (the upgrade is refused first).
    pub fn unaccepted_media(
        &self,
        accepted: impl Fn(MediaKind, &[u8]) -> bool,
    ) -> Vec<(MediaKind, usize)> {
        MediaKind::ALL
            .iter()
            .filter_map(|&k| {
                let n = self
                    .media
                    .iter()
                    .filter(|(kind, id, _)| *kind == k && !accepted(k, id))
                    .count();
                (n > 0).then_some((k, n))
            })
            .collect()
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are neither tokens nor certificate names (never, for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.certs.is_empty()
    }

    /// How many certificate names there are.
    pub fn cert_names(&self) -> usize {
        self.certs.len()
    }

    /// How many distinct tenants there are.
    pub fn tenants(&self) -> usize {
        let tokens = self.entries.iter().map(|(_, t)| &**t);
        let media = self.media.iter().map(|(_, _, t)| &**t);
        let mut names: Vec<&str> = tokens
            .chain(self.certs.iter().map(|(_, t)| &**t))
            .chain(media)
            .collect();
        names.sort_unstable();
        names.dedup();
        names.len()
    }
}

/// The value of the entry whose key is `given`. Every key is compared in full, in time that
/// depends on lengths alone, so timing tells nothing of which entry, if any, matched.
pub(crate) fn constant_time_find<'a, T>(
    entries: impl IntoIterator<Item = (&'a [u8], T)>,
    given: &[u8],
) -> Option<T> {
    let mut found = None;
    for (key, value) in entries {
        if constant_time_eq(key, given) {
            found = Some(value);
        }
    }
    found
}

/// Equal bytes, in time that depends on the lengths alone.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token file in use, replaced on reload.
#[derive(Debug)]
pub struct Auth {
    path: PathBuf,
    tokens: RwLock<Arc<Tokens>>,
    /// Bumped by every reload that took, for streams that must end when their
    /// credential no longer names their tenant ([`Caller::still_valid`]).
    reloads: tokio::sync::watch::Sender<u64>,
}

impl Auth {
    /// Reads the token file; refused when it is unreadable or malformed.
    pub fn load(path: &Path) -> Result<Arc<Self>, TokenFileError> {
        let tokens = Tokens::read(path)?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            tokens: RwLock::new(Arc::new(tokens)),
            reloads: tokio::sync::watch::channel(0).0,
        }))
    }

    /// Reads the file again; on error the tokens in use stay. Returns the new tokens.
    pub fn reload(&self) -> Result<Arc<Tokens>, TokenFileError> {
        let tokens = Arc::new(Tokens::read(&self.path)?);
        *self.tokens.write().unwrap_or_else(|e| e.into_inner()) = tokens.clone();
        self.reloads.send_modify(|n| *n += 1);
        Ok(tokens)
    }

    /// Changes with every reload that took. Its first `changed()` resolves at once, so a
    /// watch made after a credential was checked also looks at a reload in between.
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut reloads = self.reloads.subscribe();
        reloads.mark_changed();
        reloads
    }

    /// The tokens in use.
    pub fn tokens(&self) -> Arc<Tokens> {
        self.tokens
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The tenant a request was authenticated as, put in its extensions by [`Authenticate`],
/// with what it proved (kept to check it again after a reload, never shown).
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: Tenant,
    proof: Proof,
}

/// The bearer token and the client certificate (leaf, DER) a request presented.
#[derive(Clone)]
struct Proof {
    token: Option<Vec<u8>>,
    leaf: Option<Vec<u8>>,
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<hidden>")
    }
}

impl Caller {
    /// Whether what the request proved still names its tenant under `tokens` (after a
    /// reload that removed its token, or gave it to another tenant, it does not).
    pub fn still_valid(&self, tokens: &Tokens) -> bool {
        let Proof { token, leaf } = &self.proof;
        decide(tokens, token.as_deref(), leaf.as_deref()).as_ref() == Some(&self.tenant)
    }
}

/// One caller's credential watched across reloads of the token file: a stream or leg that
/// a revoked token opened must not go on ([`Revocation::revoked`]).
pub struct Revocation {
    auth: Arc<Auth>,
    caller: Caller,
    reloads: tokio::sync::watch::Receiver<u64>,
}

impl Revocation {
    /// Watches `caller` under `auth` (the first look is at once: [`Auth::reloads`]).
    pub fn new(auth: Arc<Auth>, caller: Caller) -> Self {
        let reloads = auth.reloads();
        Self {
            auth,
            caller,
            reloads,
        }
    }

    /// Resolves once the token file in use (after a reload) no longer names the caller's
    /// tenant for what it proved. Cancel-safe.
    pub async fn revoked(&mut self) {
        let Self {
            auth,
            caller,
            reloads,
        } = self;
        until_broken(reloads, || caller.still_valid(&auth.tokens())).await
    }
}

/// Resolves at the first reload `reloads` sees ([`Auth::reloads`]) after which `holds` is
/// false. Cancel-safe: the check runs in the poll that sees the reload.
pub async fn until_broken(
    reloads: &mut tokio::sync::watch::Receiver<u64>,
    holds: impl Fn() -> bool,
) {
    while reloads.changed().await.is_ok() {
        if !holds() {
            return;
        }
    }
    // The sender lives in the `Auth` whose receiver this is, which its watcher holds.
    std::future::pending().await
}

/// Resolves when `r` is revoked; never when there is none (a server without tokens).
pub async fn revoked(r: &mut Option<Revocation>) {
    match r {
        Some(r) => r.revoked().await,
        None => std::future::pending().await,
    }
}

/// The revocation watch of an authenticated request; `None` without tokens.
pub fn revocation_of<T>(auth: Option<&Arc<Auth>>, req: &Request<T>) -> Option<Revocation> {
    Some(Revocation::new(auth?.clone(), caller_of(req)?))
}

/// The tenant of an authenticated request; `None` when the service runs without tokens.
pub fn tenant_of<T>(req: &Request<T>) -> Option<Tenant> {
    req.extensions().get::<Caller>().map(|c| c.tenant.clone())
}

/// The caller of an authenticated request; `None` when the service runs without tokens.
pub fn caller_of<T>(req: &Request<T>) -> Option<Caller> {
    req.extensions().get::<Caller>().cloned()
}

/// The tenant a bearer token (`Some` when the request had an `authorization` header:
/// the token, empty when it was no bearer token) and a client certificate (its leaf, DER)
/// name together under `tokens`, if they agree on one.
fn decide(tokens: &Tokens, token: Option<&[u8]>, leaf: Option<&[u8]>) -> Option<Tenant> {
    let by_token = token.map(|t| tokens.tenant(t));
    let by_cert = leaf.map_or(CertTenant::Unmapped, |l| tokens.leaf_tenant(l));
    match (by_token, by_cert) {
        // A token given must be right and agree with the certificate.
        (Some(None), _) | (_, CertTenant::Ambiguous) => None,
        (Some(Some(t)), CertTenant::Tenant(c)) => (t == c).then_some(t),
        (Some(Some(t)), CertTenant::Unmapped) => Some(t),
        (None, CertTenant::Tenant(c)) => Some(c),
        (None, CertTenant::Unmapped) => None,
    }
}

/// Checks `authorization: Bearer TOKEN`, or a client certificate mapped by a
/// `cert:NAME` line, on every request when tokens are configured, and tags the request
/// with its tenant; without tokens it lets everything through.
#[derive(Clone, Debug)]
pub struct Authenticate(pub Option<Arc<Auth>>);

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let Some(auth) = &self.0 else {
            return Ok(req);
        };
        let tokens = auth.tokens();
        // A header that is no bearer token counts as a wrong token (empty: no tenant's).
        let token: Option<Vec<u8>> = req.metadata().get("authorization").map(|v| {
            bearer_token(v.as_bytes())
                .map(|t| t.trim_ascii().to_vec())
                .unwrap_or_default()
        });
        let leaf: Option<Vec<u8>> = req
            .peer_certs()
            .and_then(|certs| certs.first().map(|leaf| leaf.as_ref().to_vec()));
        let tenant = decide(&tokens, token.as_deref(), leaf.as_deref())
            .ok_or_else(|| status(ServerError::Unauthenticated))?;
        req.extensions_mut().insert(Caller {
            tenant,
            proof: Proof { token, leaf },
        });
        Ok(req)
    }
}

/// The names a client certificate (DER) is known by: its subjectAltName DNS names and
/// its subject's common names. None for a certificate that does not parse (rustls has
/// verified its chain already, so that is not expected).
pub fn cert_names(der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push((*d).to_string());
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            names.push(s.to_string());
        }
    }
    names
}

/// The token of an `authorization` value `Bearer TOKEN` (the scheme in any case, as
/// RFC 6750 allows).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
}

/// Reloads the token file on every SIGHUP until the task is dropped.
pub async fn reload_on_sighup(auth: Arc<Auth>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the token file will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            match auth.reload() {
                Ok(t) => eprintln!(
                    "callmood: SIGHUP: {} reloaded from {}",
                    t.summary(),
                    auth.path().display()
                ),
                Err(e) => eprintln!("callmood: SIGHUP: {e}; the tokens in use stay"),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = auth;
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaa-token";
    const B: &str = "bbbbbbbbbbbbbbbb-token";

    fn parse(text: &str) -> Result<Tokens, TokenFileError> {
        Tokens::parse(text, Path::new("tokens.txt"))
    }

    #[test]
    fn token_file_maps_media_credentials_to_tenants() {
        let t = parse(&format!(
            "{A} acme\ntwilio:0123456789abcdef0123456789abcdef acme\n\
             audiohook:globex-key globex\nfork:fs1 acme\nfork:globex-key globex\n"
        ))
        .unwrap();
        assert_eq!((t.len(), t.media_credentials(), t.tenants()), (1, 4, 2));
        let of = |kind, id: &str| {
            t.media_tenant(&MediaCredential {
                kind,
                id: id.into(),
            })
        };
        let twilio = "0123456789abcdef0123456789abcdef";
        assert_eq!(of(MediaKind::Twilio, twilio).as_deref(), Some("acme"));
        // Lines whose credential the protocol does not accept are counted by kind.
        let accepted = |k, id: &[u8]| k == MediaKind::Fork && id == b"fs1";
        assert_eq!(
            t.unaccepted_media(accepted),
            [
                (MediaKind::AudioHook, 1),
                (MediaKind::Twilio, 1),
                (MediaKind::Fork, 1)
            ]
        );
        assert_eq!(
            of(MediaKind::AudioHook, "globex-key").as_deref(),
            Some("globex")
        );
        assert_eq!(of(MediaKind::Fork, "fs1").as_deref(), Some("acme"));
        // Kinds do not mix: the fork user `globex-key` is not the AudioHook key.
        assert_eq!(of(MediaKind::Fork, "globex-key").as_deref(), Some("globex"));
        assert_eq!(of(MediaKind::AudioHook, "fs1"), None);
        assert_eq!(of(MediaKind::Twilio, &twilio[1..]), None);
        // A media line is no bearer token.
        assert_eq!(t.tenant(format!("twilio:{twilio}").as_bytes()), None);
        assert_eq!(t.tenant(twilio.as_bytes()), None);
        let e = |text: &str| {
            parse(&format!("{A} acme\n{text}\n"))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("fork: acme"),
            "token file tokens.txt, line 2: media credential: 1 to 256 bytes expected"
        );
        assert_eq!(
            e("fork:a acme\nfork:a globex"),
            "token file tokens.txt, line 3: the same media credential is on an earlier line"
        );
        assert!(e(&format!("twilio:{} acme", "x".repeat(257))).contains("1 to 256 bytes"));
        // The secret never shows in the Debug form either.
        let c = MediaCredential {
            kind: MediaKind::Twilio,
            id: twilio.into(),
        };
        assert!(!format!("{c:?}").contains(twilio));
        assert!(!format!("{t:?}").contains(twilio) && !format!("{t:?}").contains(A));
    }

    #[test]
    fn token_file_maps_tokens_to_tenants() {
        let t = parse(&format!(
            "# tokens\n\n{A} acme\n   {B}\tglobex  # not a comment here\n"
        ));
        // a third field after the tenant is refused, comments are whole lines only
        let e = t.unwrap_err().to_string();
        assert_eq!(
            e,
            "token file tokens.txt, line 4: expected `TOKEN TENANT` or `cert:NAME TENANT`, two fields"
        );
        let t = parse(&format!("# tokens\n\n{A} acme\n   {B}\tglobex\n  # x\n")).unwrap();
        assert_eq!((t.len(), t.tenants()), (2, 2));
        assert_eq!(t.tenant(A.as_bytes()).as_deref(), Some("acme"));
        assert_eq!(t.tenant(B.as_bytes()).as_deref(), Some("globex"));
        assert_eq!(t.tenant(b"aaaaaaaaaaaaaaaa-toke"), None);
        assert_eq!(t.tenant(b""), None);
    }

    #[test]
    fn cert_lines_map_certificate_names_to_tenants() {
        let t = parse(&format!(
            "cert:PBX.acme.example acme\ncert:qa.globex globex\ncert:shared globex\n{A} acme\n"
        ))
        .unwrap();
        assert_eq!((t.len(), t.cert_names(), t.tenants()), (1, 3, 2));
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let acme = CertTenant::Tenant(Tenant::from("acme"));
        assert_eq!(t.cert_tenant(&names(&["pbx.ACME.example"])), acme);
        assert_eq!(t.cert_tenant(&names(&["x", "pbx.acme.example"])), acme);
        assert_eq!(t.cert_tenant(&names(&["pbx.acme"])), CertTenant::Unmapped);
        assert_eq!(t.cert_tenant(&[]), CertTenant::Unmapped);
        // Two names of one tenant are that tenant; names of two tenants are refused.
        let globex = CertTenant::Tenant(Tenant::from("globex"));
        assert_eq!(t.cert_tenant(&names(&["qa.globex", "shared"])), globex);
        assert_eq!(
            t.cert_tenant(&names(&["qa.globex", "pbx.acme.example"])),
            CertTenant::Ambiguous
        );
        // A token is never taken for a certificate name, nor the other way round.
        assert_eq!(t.tenant(b"cert:qa.globex"), None);
        assert_eq!(t.cert_tenant(&names(&[A])), CertTenant::Unmapped);
        // A file of certificate names alone is a file.
        assert!(parse("cert:pbx acme\n").is_ok());
        for (text, why) in [
            (
                "cert: acme\n",
                "certificate name: 1 to 253 characters expected",
            ),
            (
                "cert:\n",
                "expected `TOKEN TENANT` or `cert:NAME TENANT`, two fields",
            ),
            (
                "cert:a acme\ncert:A globex\n",
                "the same certificate name is on an earlier line",
            ),
            (
                "cert:a acme!\n",
                "tenant name: at most 64 of A-Z a-z 0-9 . _ - expected",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.ends_with(why), "{text:?}: {e}");
        }
        let long = format!("cert:{} acme\n", "a".repeat(254));
        let e = parse(&long).unwrap_err().to_string();
        assert!(
            e.ends_with("certificate name: 1 to 253 characters expected"),
            "{e}"
        );
    }

    #[test]
    fn a_certificate_is_known_by_its_dns_names_and_common_name() {
        let mut params =
            rcgen::CertificateParams::new(vec!["pbx.acme.example".into(), "10.0.0.7".into()])
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "acme-pbx-1");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        // The IP address is not a name; DNS names first, then the common name.
        assert_eq!(cert_names(cert.der()), ["pbx.acme.example", "acme-pbx-1"]);
        assert!(cert_names(b"not a certificate").is_empty());
    }

    #[test]
    fn malformed_lines_are_named_and_never_shown() {
        let cases = [
            (
                format!("{A}\n"),
                1,
                "expected `TOKEN TENANT` or `cert:NAME TENANT`, two fields",
            ),
            (
                format!("#\n{A} acme\ntiny acme\n"),
                3,
                "token shorter than 16 characters",
            ),
            (
                format!("{A} ac/me\n"),
                1,
                "tenant name: at most 64 of A-Z a-z 0-9 . _ - expected",
            ),
            (
                format!("{A} acme\n{A} globex\n"),
                2,
                "the same token is on an earlier line",
            ),
        ];
        for (text, line, why) in cases {
            let e = parse(&text).unwrap_err();
            assert!(
                matches!(e, TokenFileError::Line { line: l, why: w, .. } if l == line && w == why),
                "{e}"
            );
            let msg = e.to_string();
            assert!(!msg.contains("aaaa") && !msg.contains("tiny"), "{msg}");
        }
        assert!(matches!(
            parse("# nothing\n\n").unwrap_err(),
            TokenFileError::Empty { .. }
        ));
    }

    /// A file cut inside its last line (caught while being written) is refused whole, not
    /// read as far as it goes: `B acme-eu` cut to `B acme` must not give B to acme.
    #[test]
    fn a_file_cut_inside_a_line_is_refused() {
        let full = format!("{A} acme\n{B} acme-eu\n");
        assert!(parse(&full).is_ok());
        let cut = &full[..full.len() - 4];
        assert!(cut.ends_with(" acme"));
        let e = parse(cut).unwrap_err();
        assert!(
            matches!(e, TokenFileError::Line { line: 2, why, .. } if why == UNENDED_LAST_LINE),
            "{e}"
        );
        assert!(!e.to_string().contains("bbbb"), "{e}");
        assert!(parse(&format!("{A} acme\n# end")).is_err());
    }

    #[test]
    fn reload_keeps_the_old_tokens_when_the_new_file_is_bad() {
        let dir = std::env::temp_dir().join(format!("callmood-tokens-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokens");
        std::fs::write(&path, format!("{A} acme\n")).unwrap();
        let auth = Auth::load(&path).unwrap();
        std::fs::write(&path, format!("{B} globex\n")).unwrap();
        assert_eq!(auth.reload().unwrap().len(), 1);
        assert!(auth.tokens().tenant(A.as_bytes()).is_none());
        assert_eq!(
            auth.tokens().tenant(B.as_bytes()).as_deref(),
            Some("globex")
        );
        std::fs::write(&path, "broken\n").unwrap();
        assert!(auth.reload().is_err());
        assert_eq!(
            auth.tokens().tenant(B.as_bytes()).as_deref(),
            Some("globex")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tenant_slots_are_counted_per_tenant_until_dropped() {
        let counts = TenantCounts::default();
        let (a, b) = (Tenant::from("acme"), Tenant::from("globex"));
        let first = counts.take(&a, 1).expect("a's first");
        assert!(counts.take(&a, 1).is_none());
        let other = counts.take(&b, 1).expect("b has its own count");
        drop(first);
        assert!(counts.take(&a, 1).is_some());
        drop(other);
        assert!(counts.lock().is_empty());
    }

    #[test]
    fn the_bearer_scheme_is_taken_in_any_case() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bearer"), None);
    }

    #[test]
    fn call_ids_of_the_connectors_pass_and_others_are_refused_briefly() {
        for ok in [
            "CA5f6e1a2b3c4d5e6f708192a3b4c5d6e7",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "a84b4c76e66710@pc33.example.com",
            "call-18d2f0a1b2c3",
            "queue:42_x+y=",
            &"x".repeat(MAX_CALL_ID_BYTES),
        ] {
            assert!(check_call_id(ok).is_ok(), "{ok}");
        }
        let huge = "y".repeat(1 << 20);
        let e = check_call_id(&huge).unwrap_err().to_string();
        assert!(e.len() < 200, "{e}");
        assert!(e.contains("1048576 bytes"), "{e}");
        for bad in [
            "a b",
            "a/b",
            "naïve",
            "x\n",
            &"x".repeat(MAX_CALL_ID_BYTES + 1),
        ] {
            assert!(check_call_id(bad).is_err(), "{bad}");
        }
        assert_eq!(shown(&"é".repeat(40)), format!("{}…", "é".repeat(32)));
        assert_eq!(call_id_from("day 1/Müller"), "day_1_M__ller");
        assert!(check_call_id(&call_id_from(&"é x".repeat(100))).is_ok());
    }
}
