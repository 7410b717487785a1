//! A caller once authenticated: its tenant, its scopes and which of the tenant's commands it
//! reaches.

use serde::Serialize;
use std::{collections::HashSet, fmt, str::FromStr, sync::Arc};
use uuid::Uuid;

/// One thing a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Submit commands.
    Submit,
    /// Read commands: show, list, long-poll, WebSocket.
    Read,
    /// Cancel and replay commands, one or in bulk.
    Operate,
    /// Manage keys.
    Admin,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Submit, Scope::Read, Scope::Operate, Scope::Admin];

    /// The scope's name, as keys store it and clients send it.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Submit => "submit",
            Scope::Read => "read",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
            .ok_or_else(|| format!("unknown scope {text:?}: use submit, read, operate or admin"))
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope.
    pub fn all() -> Self {
        Scope::ALL.into_iter().collect()
    }

    /// Whether `scope` is in the set.
    pub fn has(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// Whether every scope of `other` is in this set.
    pub fn covers(self, other: Scopes) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |scope| self.has(*scope))
    }

    /// The scope names, as stored.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|scope| scope.as_str().to_owned()).collect()
    }

    /// Parses stored or sent names; an unknown name is an error.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        names
            .iter()
            .map(|name| name.as_ref().trim().parse::<Scope>())
            .collect()
    }
}

impl FromIterator<Scope> for Scopes {
    fn from_iter<I: IntoIterator<Item = Scope>>(scopes: I) -> Self {
        Scopes(scopes.into_iter().fold(0, |bits, scope| bits | scope.bit()))
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// Which of its tenant's commands a principal reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Every command of the tenant (API keys).
    Tenant,
    /// The commands submitted for this subject (a browser token for one end user).
    Subject(String),
    /// Only these commands (a browser token for named ids).
    Ids(Arc<HashSet<Uuid>>),
}

/// What the caller presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An API key, by id.
    Key(Uuid),
    /// A browser token, valid until `expires_at` (Unix seconds), minted by key `key` if through
    /// the api (it dies with that key).
    Token {
        /// Unix seconds.
        expires_at: i64,
        /// The minting key.
        key: Option<Uuid>,
    },
    /// Nobody: the server runs open (development, by explicit choice).
    Open,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Whose commands it reaches.
    pub tenant: String,
    /// What it may do.
    pub scopes: Scopes,
    /// Which of the tenant's commands.
    pub reach: Reach,
    /// What it presented.
    pub credential: Credential,
    /// The bucket its requests are counted in for rate limits.
    pub(crate) limit_key: Arc<str>,
}

impl Principal {
    /// Whether the principal holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.has(scope)
    }

    /// Whether the principal may see a command of its tenant with this id and subject. (The
    /// tenant is always checked by the query itself.)
    pub fn reaches(&self, id: Uuid, subject: Option<&str>) -> bool {
        match &self.reach {
            Reach::Tenant => true,
            Reach::Subject(mine) => subject == Some(mine.as_str()),
            Reach::Ids(ids) => ids.contains(&id),
        }
    }

    /// Which commands a read of changes covers for this principal: the named `ids`, or with
    /// `all` every command it reaches (its tenant's, its subject's, or its token's ids, which
    /// `ids_of_token` holds as a slice). The WebSocket's and SSE's resume and the HTTP change
    /// feed read through it.
    pub fn changes_scope<'a>(
        &'a self,
        ids: &'a [Uuid],
        all: bool,
        ids_of_token: &'a mut Vec<Uuid>,
    ) -> cmdbus_store::Scope<'a> {
        let tenant = self.tenant.as_str();
        match (&self.reach, all) {
            (_, false) => cmdbus_store::Scope::Ids(tenant, ids),
            (Reach::Tenant, true) => cmdbus_store::Scope::Tenant(tenant),
            (Reach::Subject(subject), true) => cmdbus_store::Scope::Subject(tenant, subject),
            (Reach::Ids(reach), true) => {
                *ids_of_token = reach.iter().copied().collect();
                cmdbus_store::Scope::Ids(tenant, ids_of_token)
            }
        }
    }

    /// The subject a token is limited to.
    pub fn subject(&self) -> Option<&str> {
        match &self.reach {
            Reach::Subject(subject) => Some(subject),
            _ => None,
        }
    }

    /// The key behind this principal, directly or as the minter of its token.
    pub fn key_id(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Key(id) => Some(id),
            Credential::Token { key, .. } => key,
            Credential::Open => None,
        }
    }

    /// When a token ends (Unix seconds); `None` for keys.
    pub fn expires_at(&self) -> Option<i64> {
        match self.credential {
            Credential::Token { expires_at, .. } => Some(expires_at),
            _ => None,
        }
    }

    /// The principal of an open server: every scope on the default tenant.
    pub fn open() -> Self {
        Principal {
            tenant: cmdbus_domain::DEFAULT_TENANT.to_owned(),
            scopes: Scopes::all(),
            reach: Reach::Tenant,
            credential: Credential::Open,
            limit_key: Arc::from("open"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_cover_and_name() {
        let read_submit = Scopes::parse(&["read", "submit"]).expect("known");
        assert!(read_submit.has(Scope::Read) && read_submit.has(Scope::Submit));
        assert!(!read_submit.has(Scope::Admin));
        assert!(Scopes::all().covers(read_submit));
        assert!(!read_submit.covers(Scopes::all()));
        assert_eq!(read_submit.names(), ["submit", "read"]);
        assert!(Scopes::parse(&["root"]).is_err());
    }

    #[test]
    fn reach_limits_what_a_token_sees() {
        let id = Uuid::now_v7();
        let mut principal = Principal::open();
        assert!(principal.reaches(id, None));
        principal.reach = Reach::Subject("u1".to_owned());
        assert!(principal.reaches(id, Some("u1")));
        assert!(!principal.reaches(id, Some("u2")));
        assert!(!principal.reaches(id, None));
        principal.reach = Reach::Ids(Arc::new([id].into_iter().collect()));
        assert!(principal.reaches(id, None));
        assert!(!principal.reaches(Uuid::now_v7(), None));
    }
}
