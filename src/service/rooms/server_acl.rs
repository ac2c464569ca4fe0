//! A room's server ACL (`m.room.server_acl`): the servers the room's admins refuse. Checked
//! on every federation request about the room and on each PDU a server sends for it (spec:
//! "Server Access Control Lists").

use ruma::events::room::server_acl::RoomServerAclEventContent;
use ruma::{RoomId, ServerName};

use super::Service;
use crate::error::{Error, Result};

impl Service {
    /// Whether the room's current ACL lets `server` take part (no ACL: every server; an
    /// unreadable one: ignored, as Synapse does).
    pub fn server_acl_allows(&self, room_id: &RoomId, server: &ServerName) -> Result<bool> {
        let Some(event) = self.current_state_event(room_id, "m.room.server_acl", "")? else {
            return Ok(true);
        };
        let Ok(acl) = serde_json::from_str::<RoomServerAclEventContent>(event.content.get()) else {
            return Ok(true);
        };
        Ok(acl.is_allowed(server))
    }

    /// [`Self::server_acl_allows`] as the `403 M_FORBIDDEN` the spec asks for.
    pub fn check_server_acl(&self, room_id: &RoomId, server: &ServerName) -> Result<()> {
        if self.server_acl_allows(room_id, server)? {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "{server} is banned from this room by its server ACL"
            )))
        }
    }
}
