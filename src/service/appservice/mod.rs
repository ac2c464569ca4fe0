//! Application services: bridges and bots that act for many users through one token, with
//! namespaces of user IDs, aliases and rooms, and the server's transactions of events.
//!
//! Registrations come from the files `appservice_registration_files` lists (read at start)
//! or from the admin room (`appservices register`, stored in `appserviceid_registration`).
//! The compiled set is swapped whole on a change, so request paths read it without locks.

pub mod outgoing;
pub mod queue;
pub mod registration;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, Weak};

use ruma::{RoomAliasId, UserId};
use subtle::ConstantTimeEq;

pub use registration::{Appservice, Registration, Source};

use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::service::Services;
use crate::storage::{Engine, Tree};

/// What [`Service::load`] read, before the services exist.
pub struct Loaded {
    tree: Tree,
    registrations: Vec<Arc<Appservice>>,
    http: outgoing::Outgoing,
}

pub struct Service {
    appserviceid_registration: Tree,
    registry: RwLock<Arc<[Arc<Appservice>]>>,
    /// Serialises registering and unregistering.
    change_lock: Mutex<()>,
    /// Transactions to the services.
    pub queue: queue::Queue,
}

impl Service {
    /// Reads the configured registration files and those registered from the admin room. A
    /// file that cannot be read or is invalid stops the start: a bridge silently missing is
    /// worse.
    pub fn load(engine: &Arc<Engine>, config: &Config) -> Result<Loaded> {
        let server = &config.server_name;
        let mut loaded: Vec<Arc<Appservice>> = Vec::new();
        for path in &config.appservice_registration_files {
            let yaml = std::fs::read_to_string(path).map_err(|e| {
                Error::internal(format!(
                    "cannot read the appservice registration {}: {e}",
                    path.display()
                ))
            })?;
            let service = Appservice::from_yaml(&yaml, server, Source::File(path.clone()))
                .map_err(|e| Error::internal(format!("{}: {}", path.display(), e.message())))?;
            if let Some(clash) = clash(&loaded, &service) {
                return Err(Error::internal(format!("{}: {clash}", path.display())));
            }
            loaded.push(Arc::new(service));
        }
        let tree = engine.tree("appserviceid_registration");
        for entry in tree.iter_from(&[], rocksdb::Direction::Forward) {
            let (key, yaml) = entry?;
            let yaml = String::from_utf8_lossy(&yaml);
            let service = match Appservice::from_yaml(&yaml, server, Source::AdminRoom) {
                Ok(service) => service,
                Err(error) => {
                    tracing::error!(id = %String::from_utf8_lossy(&key), error = %error.message(), "a stored appservice registration is no longer valid; skipped");
                    continue;
                }
            };
            if let Some(clash) = clash(&loaded, &service) {
                tracing::error!(id = service.id(), %clash, "the appservice registered in the admin room clashes with a configured one; the file wins");
                continue;
            }
            loaded.push(Arc::new(service));
        }
        if !loaded.is_empty() {
            tracing::info!(count = loaded.len(), "application services registered");
        }
        Ok(Loaded {
            tree,
            registrations: loaded,
            http: outgoing::Outgoing::new()?,
        })
    }

    pub fn new(loaded: Loaded, engine: &Arc<Engine>, services: Weak<Services>) -> Self {
        Self {
            appserviceid_registration: loaded.tree,
            registry: RwLock::new(loaded.registrations.into()),
            change_lock: Mutex::new(()),
            queue: queue::Queue::new(engine, loaded.http, services),
        }
    }

    /// Every registered service.
    pub fn all(&self) -> Arc<[Arc<Appservice>]> {
        Arc::clone(&self.registry.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn get(&self, id: &str) -> Option<Arc<Appservice>> {
        self.all().iter().find(|s| s.id() == id).cloned()
    }

    /// The service whose `as_token` this is (compared in constant time).
    pub fn by_token(&self, token: &str) -> Option<Arc<Appservice>> {
        let all = self.all();
        if all.is_empty() {
            return None;
        }
        let hash = registration::sha256(token);
        all.iter()
            .find(|service| bool::from(service.as_token_hash.ct_eq(&hash)))
            .cloned()
    }

    /// The service that claims `user_id` exclusively, if one does.
    pub fn claiming_user(&self, user_id: &UserId) -> Option<Arc<Appservice>> {
        self.all()
            .iter()
            .find(|s| s.users.claims(user_id.as_str()) || s.sender == user_id)
            .cloned()
    }

    /// The service that claims `alias` exclusively, if one does.
    pub fn claiming_alias(&self, alias: &RoomAliasId) -> Option<Arc<Appservice>> {
        self.all()
            .iter()
            .find(|s| s.aliases.claims(alias.as_str()))
            .cloned()
    }

    /// Refuses a user ID that an application service claims, for anyone but that service:
    /// `M_EXCLUSIVE`, as the spec says.
    pub fn check_user_free(&self, user_id: &UserId, caller: Option<&Appservice>) -> Result<()> {
        match self.claiming_user(user_id) {
            Some(owner) if caller.is_none_or(|c| c.id() != owner.id()) => Err(Error::new(
                ErrorCode::Exclusive,
                "This user ID is reserved for an application service",
            )),
            _ => Ok(()),
        }
    }

    /// Refuses an alias that an application service claims, for anyone but that service's
    /// users.
    pub fn check_alias_free(&self, alias: &RoomAliasId, user: &UserId) -> Result<()> {
        match self.claiming_alias(alias) {
            Some(owner) if !owner.may_act_as(user) => Err(Error::new(
                ErrorCode::Exclusive,
                "This alias is reserved for an application service",
            )),
            _ => Ok(()),
        }
    }

    /// A local alias, or one an application service creates on demand: a service whose
    /// namespace covers an unknown alias is asked (`GET /_matrix/app/v1/rooms/{alias}`) and
    /// may create the room before answering.
    pub async fn resolve_alias(
        &self,
        services: &Services,
        alias: &RoomAliasId,
    ) -> Result<Option<ruma::OwnedRoomId>> {
        if let Some(room_id) = services.rooms.resolve_alias(alias)? {
            return Ok(Some(room_id));
        }
        for service in self.all().iter() {
            if service.is_interested_in_alias(alias)
                && self.queue.http().query_alias(service, alias.as_str()).await
                && let Some(room_id) = services.rooms.resolve_alias(alias)?
            {
                return Ok(Some(room_id));
            }
        }
        Ok(None)
    }

    /// Whether a local user exists, or an application service whose namespace covers the ID
    /// created it when asked (`GET /_matrix/app/v1/users/{userId}`).
    pub async fn user_exists(&self, services: &Services, user_id: &UserId) -> Result<bool> {
        if services.users.exists(user_id)? {
            return Ok(true);
        }
        for service in self.all().iter() {
            if service.users.matches(user_id.as_str())
                && self
                    .queue
                    .http()
                    .query_user(service, user_id.as_str())
                    .await
                && services.users.exists(user_id)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Creates the services' own users that do not exist yet (at start, and on registration).
    pub fn ensure_sender_accounts(&self, services: &Services) -> Result<()> {
        for service in self.all().iter() {
            if !services.users.exists(&service.sender)? {
                services
                    .users
                    .create_appservice_account(&service.sender, service.id())?;
                tracing::info!(id = service.id(), user = %service.sender, "created the application service's user");
            }
        }
        Ok(())
    }

    /// Records in the audit log the registrations the configuration's files added, changed or
    /// dropped since the last start (the admin room's are logged as their commands run).
    pub fn audit_files(&self, services: &Services) -> Result<()> {
        const KEY: &[u8] = b"appservice_files";
        let global = services.engine.tree("global");
        let before: HashMap<String, String> = global.get_json(KEY)?.unwrap_or_default();
        let mut now = HashMap::new();
        for service in self.all().iter() {
            if let Source::File(path) = &service.source {
                let yaml = serde_yaml::to_string(&service.registration).unwrap_or_default();
                let digest = hex(&registration::sha256(&yaml));
                now.insert(
                    service.id().to_owned(),
                    (path.display().to_string(), digest),
                );
            }
        }
        let mut entries = Vec::new();
        for (id, (path, digest)) in &now {
            match before.get(id) {
                None => entries.push((path.clone(), format!("appservices register {id:?} (file)"))),
                Some(old) if old != digest => {
                    entries.push((path.clone(), format!("appservices change {id:?} (file)")));
                }
                Some(_) => {}
            }
        }
        for id in before.keys().filter(|id| !now.contains_key(*id)) {
            entries.push((
                "configuration".to_owned(),
                format!("appservices unregister {id:?} (file removed)"),
            ));
        }
        for (origin, action) in entries {
            services.admin.audit.append(&crate::admin::audit::Entry {
                ts: crate::service::now_millis(),
                actor: "configuration".to_owned(),
                origin,
                action,
                outcome: "ok".to_owned(),
            })?;
        }
        let digests: HashMap<&String, &String> = now.iter().map(|(id, (_, d))| (id, d)).collect();
        global.insert(KEY, &serde_json::to_vec(&digests)?)
    }

    /// Registers a service from the admin room: checked, stored, and in use at once.
    pub fn register(&self, services: &Services, yaml: &str) -> Result<Arc<Appservice>> {
        let service = Appservice::from_yaml(yaml, services.server_name(), Source::AdminRoom)?;
        let _guard = self.change_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.all();
        if let Some(clash) = clash(&current, &service) {
            return Err(Error::invalid_param(clash));
        }
        self.appserviceid_registration
            .insert(service.id().as_bytes(), yaml.as_bytes())?;
        let service = Arc::new(service);
        let mut next: Vec<Arc<Appservice>> = current.to_vec();
        next.push(Arc::clone(&service));
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = next.into();
        self.queue.forget_interest();
        self.ensure_sender_accounts(services)?;
        tracing::info!(id = service.id(), "application service registered");
        Ok(service)
    }

    /// Unregisters a service registered from the admin room; what was queued for it goes.
    pub fn unregister(&self, id: &str) -> Result<()> {
        let _guard = self.change_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.all();
        let Some(service) = current.iter().find(|s| s.id() == id) else {
            return Err(Error::not_found(format!(
                "There is no application service `{id}`"
            )));
        };
        if let Source::File(path) = &service.source {
            return Err(Error::invalid_param(format!(
                "`{id}` comes from {}: remove it from appservice_registration_files instead",
                path.display()
            )));
        }
        self.appserviceid_registration.remove(id.as_bytes())?;
        let next: Vec<Arc<Appservice>> = current.iter().filter(|s| s.id() != id).cloned().collect();
        *self.registry.write().unwrap_or_else(|e| e.into_inner()) = next.into();
        self.queue.forget_interest();
        self.queue.drop_queue(id)?;
        tracing::info!(id, "application service unregistered");
        Ok(())
    }

    /// Each service's queue status, for the admin commands.
    pub fn statuses(&self) -> Result<HashMap<String, queue::Status>> {
        self.all()
            .iter()
            .map(|s| Ok((s.id().to_owned(), self.queue.status(s.id())?)))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why `service` cannot sit beside `others`: the same ID, token or user.
fn clash(others: &[Arc<Appservice>], service: &Appservice) -> Option<String> {
    let new = &service.registration;
    for other in others {
        let old = &other.registration;
        if old.id == new.id {
            return Some(format!(
                "an application service `{}` is registered already",
                new.id
            ));
        }
        if [&old.as_token, &old.hs_token].contains(&&new.as_token)
            || [&old.as_token, &old.hs_token].contains(&&new.hs_token)
        {
            return Some(format!(
                "its tokens are those of the application service `{}`; each needs its own",
                old.id
            ));
        }
        if other.sender == service.sender {
            return Some(format!(
                "its sender_localpart is that of the application service `{}`",
                old.id
            ));
        }
    }
    None
}
