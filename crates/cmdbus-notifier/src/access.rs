//! A connection's credential: who it acts for, until when, and what it holds of its tenant's
//! and subject's shares (a socket, the ids it follows). A browser authenticates with its first message and renews a token on the same socket
//! before it expires; a key that is revoked (the process's key watch says so, `keys`), or a
//! token that expires unrenewed (a deadline the socket sleeps until), ends the socket with
//! close code 4401 — the client reconnects and resumes with its cursor.

use cmdbus_auth::{AuthError, Principal, Scope, Slot};
use std::time::Duration;
use tokio::time::Instant;

use crate::{
    close::{CLOSE_FORBIDDEN, Refused},
    keys::{KeyEnd, KeyWatch},
};

/// The connection's credential, once it has one.
#[derive(Debug, Default)]
pub(crate) struct Access {
    principal: Option<Principal>,
    slot: Option<Slot>,
    /// The ids this connection follows, counted against its tenant's and subject's shares.
    ids: Option<Slot>,
    /// When to tell the client to renew its token; `None` for keys, or once told.
    renew_at: Option<Instant>,
    /// When the token ends, and the socket with it; `None` for keys.
    expires: Option<Instant>,
    /// The key the credential rests on (its own, or the one that minted its token).
    key: Option<KeyEnd>,
}

impl Access {
    pub(crate) fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Takes a principal: the first one takes a socket slot of its tenant; a later one (a
    /// renewed token) must be of the same tenant.
    pub(crate) fn grant(
        &mut self,
        auth: &cmdbus_auth::Authenticator,
        keys: &KeyWatch,
        principal: Principal,
    ) -> Result<(), Refused> {
        if let Some(current) = &self.principal
            && current.tenant != principal.tenant
        {
            return Err(Refused {
                code: CLOSE_FORBIDDEN,
                reason: "a socket stays with one tenant",
            });
        }
        Ok(self.take(auth, keys, principal)?)
    }

    /// `grant`, for a principal of the connection's tenant (or its first), refused in the
    /// authenticator's words: an SSE stream answers them as HTTP problems.
    pub(crate) fn take(
        &mut self,
        auth: &cmdbus_auth::Authenticator,
        keys: &KeyWatch,
        principal: Principal,
    ) -> Result<(), AuthError> {
        if !principal.has(Scope::Read) {
            return Err(AuthError::Forbidden("read"));
        }
        if self.principal.is_none() {
            // One socket slot, whichever transport: an SSE stream counts as a socket.
            self.slot = Some(auth.socket(&principal)?);
            self.ids = Some(auth.followed_ids(&principal));
        }
        // Told to renew half a minute before expiry (half its life, for a short token).
        self.renew_at = principal.expires_at().map(|expires_at| {
            let left = Duration::from_secs(
                u64::try_from(expires_at - chrono::Utc::now().timestamp()).unwrap_or(0),
            );
            Instant::now() + left.saturating_sub((left / 2).min(Duration::from_secs(30)))
        });
        self.expires = principal.expires_at().map(|expires_at| {
            let left = expires_at
                .saturating_mul(1000)
                .saturating_sub(chrono::Utc::now().timestamp_millis());
            Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(0))
        });
        self.key = principal.key_id().map(|key| keys.watch(key));
        self.principal = Some(principal);
        Ok(())
    }

    /// Counts `count` followed ids against the shares of the connection's tenant and subject:
    /// fewer are always given back, more are refused past a share (nothing then changes).
    pub(crate) fn hold_ids(&mut self, count: usize) -> Result<(), AuthError> {
        match &mut self.ids {
            Some(ids) => ids.resize(count),
            None => Ok(()),
        }
    }

    /// When the client should be told to renew its token.
    pub(crate) fn renew_at(&self) -> Option<Instant> {
        self.renew_at
    }

    pub(crate) fn renew_sent(&mut self) {
        self.renew_at = None;
    }

    /// When the token ends (the socket closes then); `None` for keys.
    pub(crate) fn expires(&self) -> Option<Instant> {
        self.expires
    }

    /// Resolves, with the reason, once the key the credential rests on no longer holds; never
    /// for a credential without a key.
    pub(crate) async fn key_ended(&mut self) -> Refused {
        if let Some(key) = &mut self.key
            && let Ok(end) = key.wait_for(Option::is_some).await
            && let Some(refused) = *end
        {
            return refused;
        }
        std::future::pending().await
    }
}
