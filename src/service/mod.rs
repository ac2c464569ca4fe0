//! Services: the server's areas, each owning its trees. One [`Services`] value is built at start
//! and handed to every request handler as axum state; there are no global singletons.

pub mod account_data;
pub mod appservice;
pub mod federation;
pub mod key_backup;
pub mod keys;
pub mod media;
pub mod metrics;
pub mod moderation;
pub mod net;
pub mod openid;
pub mod presence;
pub mod push;
pub mod pushers;
pub mod rate_limit;
pub mod receipts;
pub mod reports;
pub mod rooms;
pub mod server_keys;
pub mod sliding;
pub mod sync;
pub mod to_device;
pub mod typing;
pub mod uiaa;
pub mod users;

use std::sync::Arc;

use ruma::{DeviceId, UserId};

use crate::config::Config;
use crate::error::Result;
use crate::storage::Engine;

pub struct Services {
    pub config: Config,
    pub engine: Arc<Engine>,
    pub users: users::Service,
    pub uiaa: uiaa::Service,
    pub account_data: account_data::Service,
    pub rate_limit: rate_limit::Service,
    pub server_keys: Arc<server_keys::Service>,
    /// Calls to other servers (discovery, certificates, the address policy).
    pub federation: federation::FederationClient,
    /// The queues of events for other servers.
    pub sending: federation::sender::Sender,
    /// Recent incoming transactions.
    pub inbound: federation::inbound::Inbound,
    /// Tokens that prove a user to third parties (widgets, integrations).
    pub openid: openid::Service,
    /// How fast, and how many at once, each other server's requests are taken.
    pub origin_limits: federation::origin_limits::OriginLimits,
    pub rooms: rooms::Service,
    pub typing: typing::Service,
    pub receipts: receipts::Service,
    pub push: push::Service,
    /// Where users' devices want notifications sent.
    pub pushers: pushers::Service,
    /// Bridges and bots: their registrations and transactions.
    pub appservices: appservice::Service,
    pub presence: presence::Service,
    pub lazy_members: sync::lazy::Service,
    pub keys: keys::Service,
    pub to_device: to_device::Service,
    pub key_backup: key_backup::Service,
    pub media: media::Service,
    pub sliding: sliding::Service,
    /// The admin room, its bot and the audit log.
    pub admin: crate::admin::Service,
    /// What users reported to the administrators.
    pub reports: reports::Service,
    /// Room deletions running or done, for Synapse's status endpoints.
    pub room_deletions: moderation::Deletions,
    /// The HTTP client of URL previews, when they are switched on.
    pub preview_fetcher: Option<media::preview::Fetcher>,
    /// Prometheus metrics, when `[global.metrics]` is enabled.
    pub metrics: Option<metrics::Metrics>,
    /// Set when the server stops, so long-polling requests return at once.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl Services {
    pub fn build(config: Config, engine: Arc<Engine>) -> Result<Arc<Self>> {
        let server_keys = Arc::new(server_keys::Service::load_or_create(
            &engine,
            config.trusted_servers.clone(),
        )?);
        let bot = ruma::UserId::parse(format!(
            "@{}:{}",
            config.admin_bot_localpart, config.server_name
        ))
        .map_err(|e| {
            crate::error::Error::internal(format!(
                "admin_bot_localpart {:?} does not make a valid user ID: {e}",
                config.admin_bot_localpart
            ))
        })?;
        // What can fail is made first: the rest is built inside `new_cyclic`, which hands the
        // rooms service its (weak) handle on the whole at construction, so that it can never be
        // missing afterwards.
        let media = media::Service::new(&engine, config.media_path())?;
        let preview_fetcher = config
            .media
            .url_preview_enabled
            .then(|| media::preview::Fetcher::new(&config.media))
            .transpose()?;
        let users = users::Service::new(&engine, &config, bot.clone())?;
        let admin = crate::admin::Service::new(&engine, bot)?;
        let reports = reports::Service::new(&engine)?;
        let federation = federation::FederationClient::new(&config, &engine)?;
        let push_client = pushers::delivery::PushClient::new(&config.push)?;
        let appservices = appservice::Service::load(&engine, &config)?;
        let metrics = config
            .metrics
            .enabled
            .then(metrics::Metrics::new)
            .transpose()?;
        let services = Arc::new_cyclic(|services| Self {
            rooms: rooms::Service::new(
                &engine,
                config.server_name.clone(),
                Arc::clone(&server_keys),
                services.clone(),
            ),
            server_keys,
            federation,
            sending: federation::sender::Sender::new(&engine, services.clone()),
            inbound: federation::inbound::Inbound::default(),
            openid: openid::Service::new(&engine),
            origin_limits: federation::origin_limits::OriginLimits::new(
                config.federation.concurrent_requests,
            ),
            typing: typing::Service::new(&engine),
            receipts: receipts::Service::new(&engine),
            push: push::Service::new(&engine),
            pushers: pushers::Service::new(&engine, push_client, services.clone()),
            appservices: appservice::Service::new(appservices, &engine, services.clone()),
            presence: presence::Service::new(&engine),
            lazy_members: sync::lazy::Service::new(&engine),
            keys: keys::Service::new(&engine),
            to_device: to_device::Service::new(&engine),
            key_backup: key_backup::Service::new(&engine),
            media,
            sliding: sliding::Service::default(),
            preview_fetcher,
            metrics,
            shutdown: tokio::sync::watch::channel(false).0,
            users,
            admin,
            reports,
            room_deletions: moderation::Deletions::default(),
            uiaa: uiaa::Service::default(),
            account_data: account_data::Service::new(&engine),
            rate_limit: rate_limit::Service::default(),
            config,
            engine,
        });
        services.rooms.build_room_lists()?;
        services.rooms.build_relation_markers()?;
        services.appservices.ensure_sender_accounts(&services)?;
        services.appservices.audit_files(&services)?;
        Ok(services)
    }

    pub fn server_name(&self) -> &ruma::ServerName {
        &self.config.server_name
    }

    /// Services on a fresh database in `dir` with the default configuration, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &std::path::Path) -> Arc<Services> {
        let engine = crate::storage::Engine::open(crate::storage::EngineOptions {
            path: dir,
            cache_capacity_bytes: 8 << 20,
            compression: true,
            statistics: false,
        })
        .unwrap();
        let config = Config {
            database_path: dir.to_owned(),
            ..Config::default()
        };
        Services::build(config, engine).unwrap()
    }

    /// Removes a device, its tokens and everything other areas keep for it.
    pub fn remove_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<()> {
        let had_keys = self.keys.device_keys(user_id, device_id)?.is_some();
        self.users.remove_device(user_id, device_id)?;
        self.lazy_members.forget_device(user_id, device_id)?;
        self.keys.remove_device(user_id, device_id)?;
        self.to_device.remove_device(user_id, device_id)?;
        self.pushers.remove_for_device(user_id, device_id)?;
        self.sliding.forget_device(user_id, device_id);
        if had_keys {
            keys::announce_change(self, user_id, keys::Changed::Device(device_id))?;
        }
        Ok(())
    }

    /// Deactivates an account for good: the user leaves every room (and declines every
    /// invite), loses every device and token, and the account can never log in again. With
    /// `erase`, their messages are redacted first (see [`Self::erase_messages`]).
    pub async fn deactivate_account(
        &self,
        user_id: &UserId,
        erase: bool,
    ) -> Result<Option<moderation::Erased>> {
        let erased = if erase {
            Some(self.erase_messages(user_id).await?)
        } else {
            None
        };
        for (room_id, membership) in self.rooms.memberships_of(user_id)? {
            if matches!(membership.as_str(), "join" | "invite" | "knock") {
                rooms::member_change::set_membership(
                    self, user_id, &room_id, user_id, "leave", None,
                )
                .await?;
            }
        }
        self.remove_all_devices(user_id, None)?;
        self.users.deactivate(user_id)?;
        tracing::info!(%user_id, erase, "account deactivated");
        Ok(erased)
    }

    /// Removes every device of the user except `keep`, hidden ones (an administrator's "log in
    /// as") included.
    pub fn remove_all_devices(&self, user_id: &UserId, keep: Option<&DeviceId>) -> Result<()> {
        let listed = self.users.devices(user_id)?.into_iter().map(|(id, _)| id);
        let hidden = self.users.hidden_devices(user_id)?;
        for device_id in listed.chain(hidden) {
            if Some(&*device_id) != keep {
                self.remove_device(user_id, &device_id)?;
            }
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
