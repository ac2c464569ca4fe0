//! Accounts: creation, passwords, deactivation, administrators, and (in submodules) devices with
//! their tokens, profiles and registration tokens.

mod devices;
mod flags;
pub mod password;
mod profile;
mod registration_tokens;
pub mod shared_secret;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use ruma::{OwnedUserId, UserId};

pub use devices::{IssuedTokens, StoredDevice, TokenLookup};
pub use registration_tokens::RegistrationTokenInfo;

use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::storage::{Batch, Engine, Key, Tree};

/// The password entry of the server's own account (its bot): not a password hash.
const SERVER_ACCOUNT: &str = "!server-account";
/// The password entry of an application service's user, followed by the service's ID.
const APPSERVICE_ACCOUNT: &str = "!appservice:";

pub struct Service {
    engine: Arc<Engine>,
    userid_password: Tree,
    userid_admin: Tree,
    userid_createdts: Tree,
    useridprofilekey_value: Tree,
    userdeviceid_device: Tree,
    userdeviceid_tokenhash: Tree,
    tokenhash_session: Tree,
    userdeviceid_refreshhash: Tree,
    refreshhash_session: Tree,
    registrationtoken_info: Tree,
    global: Tree,
    /// Serialises account creation so two requests cannot claim one user ID or one use of a
    /// limited registration token.
    create_lock: Mutex<()>,
    /// A hash of nothing anyone knows, verified against for unknown users.
    dummy_hash: OnceLock<String>,
    /// Argon2 work in progress at once, one per core: each needs 19 MiB and a core, so a
    /// burst of logins queues here instead of multiplying memory and thrashing the CPU.
    password_work: tokio::sync::Semaphore,
    /// When each access token (by hash) last refreshed its device's last-seen record.
    last_touched: Mutex<HashMap<Vec<u8>, Instant>>,
    refreshable_token_lifetime_ms: u64,
    /// The server's bot account: not a person, so it is never the "first account".
    bot: OwnedUserId,
    /// Locked accounts: every request but logout is refused.
    locked: flags::AccountFlag,
    /// Suspended accounts: they may read, but not send (MSC3823).
    suspended: flags::AccountFlag,
    /// Deactivated accounts whose messages were erased.
    userid_erased: Tree,
    config_registration_token: Option<String>,
    /// Nonces of shared-secret registration handed out and not yet used.
    pub shared_secret_nonces: shared_secret::Nonces,
}

/// Why a user ID cannot be registered.
pub enum Availability {
    Available(OwnedUserId),
    Taken,
    Invalid(&'static str),
}

impl Service {
    pub fn new(engine: &Arc<Engine>, config: &Config, bot: OwnedUserId) -> Result<Self> {
        Ok(Self {
            engine: Arc::clone(engine),
            userid_password: engine.tree("userid_password"),
            userid_admin: engine.tree("userid_admin"),
            userid_createdts: engine.tree("userid_createdts"),
            useridprofilekey_value: engine.tree("useridprofilekey_value"),
            userdeviceid_device: engine.tree("userdeviceid_device"),
            userdeviceid_tokenhash: engine.tree("userdeviceid_tokenhash"),
            tokenhash_session: engine.tree("tokenhash_session"),
            userdeviceid_refreshhash: engine.tree("userdeviceid_refreshhash"),
            refreshhash_session: engine.tree("refreshhash_session"),
            registrationtoken_info: engine.tree("registrationtoken_info"),
            global: engine.tree("global"),
            create_lock: Mutex::new(()),
            dummy_hash: OnceLock::new(),
            password_work: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
            last_touched: Mutex::new(HashMap::new()),
            refreshable_token_lifetime_ms: config
                .refreshable_access_token_lifetime_secs
                .saturating_mul(1000),
            config_registration_token: config.registration_token.clone(),
            shared_secret_nonces: shared_secret::Nonces::default(),
            bot,
            locked: flags::AccountFlag::load(engine.tree("userid_locked"))?,
            suspended: flags::AccountFlag::load(engine.tree("userid_suspended"))?,
            userid_erased: engine.tree("userid_erased"),
        })
    }

    pub fn is_locked(&self, user_id: &UserId) -> bool {
        self.locked.contains(user_id)
    }

    /// Locks or unlocks an account: a locked one can only log out.
    pub fn set_locked(&self, user_id: &UserId, locked: bool) -> Result<()> {
        self.locked.set(user_id, locked)
    }

    pub fn is_suspended(&self, user_id: &UserId) -> bool {
        self.suspended.contains(user_id)
    }

    /// Refuses what a suspended account may not do (send, change its profile, upload).
    pub fn ensure_not_suspended(&self, user_id: &UserId) -> Result<()> {
        if self.is_suspended(user_id) {
            return Err(Error::new(
                ErrorCode::UserSuspended,
                "Your account is suspended: you can read, leave rooms and remove your own \
                 messages, but not send or change anything",
            ));
        }
        Ok(())
    }

    /// Suspends or reinstates an account: a suspended one can read but not send.
    pub fn set_suspended(&self, user_id: &UserId, suspended: bool) -> Result<()> {
        self.suspended.set(user_id, suspended)
    }

    /// Whether the account was deactivated with its messages erased.
    pub fn is_erased(&self, user_id: &UserId) -> Result<bool> {
        self.userid_erased.contains(user_id.as_bytes())
    }

    pub fn set_erased(&self, user_id: &UserId, erased: bool) -> Result<()> {
        if erased {
            self.userid_erased.insert(user_id.as_bytes(), &[])
        } else {
            self.userid_erased.remove(user_id.as_bytes())
        }
    }

    /// Whether any account of a person (even a deactivated one) exists: the server's bot and
    /// application services' users do not count.
    pub fn has_any_user(&self) -> Result<bool> {
        for entry in self
            .userid_password
            .iter_from(&[], rocksdb::Direction::Forward)
        {
            let (key, value) = entry?;
            let passwordless = value.starts_with(SERVER_ACCOUNT.as_bytes())
                || value.starts_with(APPSERVICE_ACCOUNT.as_bytes());
            if *key != *self.bot.as_bytes() && !passwordless {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every account: user ID, and whether it is deactivated.
    pub fn all_accounts(&self) -> Result<Vec<(OwnedUserId, bool)>> {
        self.userid_password
            .iter_from(&[], rocksdb::Direction::Forward)
            .map(|entry| {
                let (key, hash) = entry?;
                Ok((crate::storage::decode_id(&key)?, hash.is_empty()))
            })
            .collect()
    }

    /// Server administrators.
    pub fn admins(&self) -> Result<Vec<OwnedUserId>> {
        self.userid_admin
            .iter_from(&[], rocksdb::Direction::Forward)
            .map(|entry| crate::storage::decode_id(&entry?.0))
            .collect()
    }

    pub fn set_admin(&self, user_id: &UserId, admin: bool) -> Result<()> {
        if admin {
            self.userid_admin.insert(user_id.as_bytes(), &[])
        } else {
            self.userid_admin.remove(user_id.as_bytes())
        }
    }

    /// Creates an account for the server itself (its bot): nobody can log in to it (its
    /// password entry is no password hash) and it is never an administrator.
    pub fn create_server_account(&self, user_id: &UserId, displayname: &str) -> Result<()> {
        self.create_passwordless(user_id, SERVER_ACCOUNT.as_bytes(), displayname)
    }

    /// Creates an account of an application service (its own user, or one it registered in
    /// its namespace): no password, never an administrator, used through the service's token.
    pub fn create_appservice_account(&self, user_id: &UserId, appservice_id: &str) -> Result<()> {
        let marker = format!("{APPSERVICE_ACCOUNT}{appservice_id}");
        self.create_passwordless(user_id, marker.as_bytes(), user_id.localpart())
    }

    /// The application service that registered the account, if one did.
    pub fn appservice_of(&self, user_id: &UserId) -> Result<Option<String>> {
        Ok(self
            .userid_password
            .get(user_id.as_bytes())?
            .and_then(|value| {
                value
                    .strip_prefix(APPSERVICE_ACCOUNT.as_bytes())
                    .map(|id| String::from_utf8_lossy(id).into_owned())
            }))
    }

    fn create_passwordless(
        &self,
        user_id: &UserId,
        marker: &[u8],
        displayname: &str,
    ) -> Result<()> {
        let _guard = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.exists(user_id)? {
            return Err(Error::new(
                ErrorCode::UserInUse,
                "The user ID is already taken",
            ));
        }
        let mut batch = Batch::default();
        batch.put(&self.userid_password, user_id.as_bytes(), marker)?;
        batch.put(
            &self.useridprofilekey_value,
            &(user_id.as_str(), "displayname").encode(),
            serde_json::Value::String(displayname.to_owned())
                .to_string()
                .as_bytes(),
        )?;
        batch.put(
            &self.userid_createdts,
            user_id.as_bytes(),
            &crate::service::now_millis().to_be_bytes(),
        )?;
        self.engine.write(batch)
    }

    /// All active (not deactivated) local accounts.
    pub fn active_users(&self) -> Result<Vec<OwnedUserId>> {
        let mut users = Vec::new();
        for entry in self
            .userid_password
            .iter_from(&[], rocksdb::Direction::Forward)
        {
            let (key, hash) = entry?;
            if !hash.is_empty() {
                users.push(crate::storage::decode_id(&key)?);
            }
        }
        Ok(users)
    }

    /// Whether the user ID belongs to an account of this server, deactivated or not.
    pub fn exists(&self, user_id: &UserId) -> Result<bool> {
        self.userid_password.contains(user_id.as_bytes())
    }

    pub fn is_deactivated(&self, user_id: &UserId) -> Result<bool> {
        Ok(self
            .userid_password
            .get(user_id.as_bytes())?
            .is_some_and(|hash| hash.is_empty()))
    }

    /// When the account was created (milliseconds), if that was recorded.
    pub fn created_at(&self, user_id: &UserId) -> Result<Option<u64>> {
        Ok(self
            .userid_createdts
            .get(user_id.as_bytes())?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map(u64::from_be_bytes))
    }

    pub fn is_admin(&self, user_id: &UserId) -> Result<bool> {
        self.userid_admin.contains(user_id.as_bytes())
    }

    /// Checks a requested localpart: the spec's user ID grammar (lower-case letters, digits and
    /// `._=-/+`), not the `_` prefix reserved for bridges, and the ID not yet taken.
    pub fn availability(
        &self,
        localpart: &str,
        server_name: &ruma::ServerName,
    ) -> Result<Availability> {
        let localpart = localpart.to_lowercase();
        if localpart.is_empty() {
            return Ok(Availability::Invalid("The username must not be empty"));
        }
        if !localpart.bytes().all(
            |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'),
        ) {
            return Ok(Availability::Invalid(
                "The username may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'",
            ));
        }
        if localpart.starts_with('_') {
            return Ok(Availability::Invalid(
                "Usernames starting with '_' are reserved",
            ));
        }
        let Ok(user_id) = UserId::parse(format!("@{localpart}:{server_name}")) else {
            return Ok(Availability::Invalid("The resulting user ID is not valid"));
        };
        if user_id.as_str().len() > 255 {
            return Ok(Availability::Invalid(
                "The user ID must be at most 255 characters",
            ));
        }
        if self.exists(&user_id)? {
            return Ok(Availability::Taken);
        }
        Ok(Availability::Available(user_id))
    }

    /// Creates an account. The first account on the server becomes an administrator. If
    /// `registration_token` is given, one use of it is consumed in the same step, so a
    /// single-use token can never create two accounts.
    pub fn create_account(
        &self,
        user_id: &UserId,
        password_hash: &str,
        registration_token: Option<&str>,
    ) -> Result<bool> {
        let _guard = self.create_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.exists(user_id)? {
            return Err(Error::new(
                ErrorCode::UserInUse,
                "The user ID is already taken",
            ));
        }
        let mut batch = Batch::default();
        if let Some(token) = registration_token {
            self.consume_registration_token(token, &mut batch)?;
        }
        let first = !self.has_any_user()?;
        batch.put(
            &self.userid_password,
            user_id.as_bytes(),
            password_hash.as_bytes(),
        )?;
        if first {
            batch.put(&self.userid_admin, user_id.as_bytes(), &[])?;
            self.retire_bootstrap_token(&mut batch)?;
        }
        let displayname = serde_json::Value::String(user_id.localpart().to_owned());
        batch.put(
            &self.useridprofilekey_value,
            &(user_id.as_str(), "displayname").encode(),
            displayname.to_string().as_bytes(),
        )?;
        batch.put(
            &self.userid_createdts,
            user_id.as_bytes(),
            &crate::service::now_millis().to_be_bytes(),
        )?;
        self.engine.write(batch)?;
        if first {
            tracing::info!(%user_id, "first account created; it is a server administrator");
        }
        Ok(first)
    }

    /// The stored password hash, or `None` for unknown or deactivated users.
    pub fn password_hash(&self, user_id: &UserId) -> Result<Option<String>> {
        let Some(bytes) = self.userid_password.get(user_id.as_bytes())? else {
            return Ok(None);
        };
        if bytes.is_empty() {
            return Ok(None);
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| Error::Database("password hash is not UTF-8".into()))
    }

    /// Checks a password; false for unknown and deactivated accounts. Those cost as much time
    /// as a real check, so response times do not reveal which accounts exist.
    pub async fn check_password(&self, user_id: &UserId, password: &str) -> Result<bool> {
        match self.password_hash(user_id)? {
            Some(hash) => Ok(self.verify_password(password, hash).await),
            None => {
                let dummy = match self.dummy_hash.get() {
                    Some(hash) => hash.clone(),
                    None => {
                        let hash = self.hash_password(password::random_secret()).await?;
                        self.dummy_hash.get_or_init(|| hash).clone()
                    }
                };
                self.verify_password(password, dummy).await;
                Ok(false)
            }
        }
    }

    /// Hashes a new password (argon2id), waiting for a free core.
    pub async fn hash_password(&self, password: String) -> Result<String> {
        let _permit = self
            .password_work
            .acquire()
            .await
            .map_err(Error::internal)?;
        password::hash(password).await
    }

    async fn verify_password(&self, password: &str, hash: String) -> bool {
        let Ok(_permit) = self.password_work.acquire().await else {
            return false;
        };
        password::verify(password.to_owned(), hash).await
    }

    pub fn set_password_hash(&self, user_id: &UserId, password_hash: &str) -> Result<()> {
        self.userid_password
            .insert(user_id.as_bytes(), password_hash.as_bytes())
    }

    /// Gives a deactivated account its use back: a new password, and its localpart as display
    /// name (deactivation cleared the profile).
    pub fn reactivate(&self, user_id: &UserId, password_hash: &str) -> Result<()> {
        let mut batch = Batch::default();
        batch.put(
            &self.userid_password,
            user_id.as_bytes(),
            password_hash.as_bytes(),
        )?;
        batch.put(
            &self.useridprofilekey_value,
            &(user_id.as_str(), "displayname").encode(),
            serde_json::Value::String(user_id.localpart().to_owned())
                .to_string()
                .as_bytes(),
        )?;
        batch.delete(&self.userid_erased, user_id.as_bytes())?;
        self.engine.write(batch)
    }

    /// Deactivates an account for good: its devices and tokens go, its password is wiped and
    /// its profile cleared, but the user ID stays reserved.
    pub fn deactivate(&self, user_id: &UserId) -> Result<()> {
        self.remove_all_devices(user_id, None)?;
        let mut batch = Batch::default();
        batch.put(&self.userid_password, user_id.as_bytes(), &[])?;
        batch.delete(&self.userid_admin, user_id.as_bytes())?;
        for entry in self
            .useridprofilekey_value
            .scan_prefix((user_id.as_str(),).prefix())
        {
            let (key, _) = entry?;
            batch.delete(&self.useridprofilekey_value, &key)?;
        }
        self.engine.write(batch)
    }
}
