//! Runtime channel helpers: namespace resolution, name checks, user-limited and personal
//! channels.
//!
//! These are pure functions of the configuration. [`Config::prepare`] builds a lookup index
//! (namespace name → position, precompiled `channel_regex`es); without it, or when the
//! configuration was changed after preparing, lookups fall back to a linear scan and regexes
//! are compiled on demand, so results are always correct.

use crate::values::DataFormat;
use std::collections::HashMap;

use regex::Regex;

use crate::{ChannelError, ChannelOptions, Config, Duration};

/// Precompiled lookup tables owned by [`Config`] (built by [`Config::prepare`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct ChannelIndex {
    /// Namespace name → position in `channel.namespaces` (first occurrence wins).
    by_name: HashMap<String, usize>,
    /// Compiled `channel_regex` per namespace position, with the pattern it was built from.
    namespace_regex: Vec<Option<(String, Regex)>>,
    /// Compiled `channel_regex` of `channel.without_namespace`.
    without_namespace_regex: Option<(String, Regex)>,
}

/// The index is derived data: two configurations are equal when their settings are.
impl PartialEq for ChannelIndex {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ChannelIndex {}

fn compile(pattern: &str) -> Option<(String, Regex)> {
    if pattern.is_empty() {
        return None;
    }
    Regex::new(pattern).ok().map(|re| (pattern.to_owned(), re))
}

/// Which options a channel resolved to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    WithoutNamespace,
    Namespace(usize),
}

/// The result of resolving a channel name: its namespace and effective options.
#[derive(Clone, Copy, Debug)]
pub struct ResolvedChannel<'a> {
    /// Namespace name, or `None` for channels without a namespace.
    pub namespace: Option<&'a str>,
    /// Options that apply to the channel.
    pub options: &'a ChannelOptions,
    /// True when the channel starts with `channel.private_prefix`.
    pub private: bool,
    /// Effective stream meta TTL (namespace `history_meta_ttl` or `channel.history_meta_ttl`).
    pub history_meta_ttl: Duration,
    /// Effective publication data format (namespace value or `channel.publication_data_format`).
    pub publication_data_format: &'a DataFormat,
    slot: Slot,
}

impl Config {
    /// Builds the runtime lookup index (namespace table and compiled channel regexes).
    ///
    /// [`crate::load`] calls this; call it again after changing `channel` settings by hand.
    /// Invalid regexes are skipped here ([`Config::validate`] reports them).
    pub fn prepare(&mut self) {
        let mut by_name = HashMap::with_capacity(self.channel.namespaces.len());
        for (i, ns) in self.channel.namespaces.iter().enumerate() {
            by_name.entry(ns.name.clone()).or_insert(i);
        }
        self.index = ChannelIndex {
            by_name,
            namespace_regex: self
                .channel
                .namespaces
                .iter()
                .map(|ns| compile(&ns.options.channel_regex))
                .collect(),
            without_namespace_regex: compile(&self.channel.without_namespace.channel_regex),
        };
    }

    /// True when the channel starts with the (non-empty) private prefix.
    pub fn is_private_channel(&self, channel: &str) -> bool {
        let prefix = &self.channel.private_prefix;
        !prefix.is_empty() && channel.starts_with(prefix.as_str())
    }

    fn find_namespace(&self, name: &str) -> Option<usize> {
        let namespaces = &self.channel.namespaces;
        if let Some(&i) = self.index.by_name.get(name)
            && namespaces.get(i).is_some_and(|ns| ns.name == name)
        {
            return Some(i);
        }
        namespaces.iter().position(|ns| ns.name == name)
    }

    /// Splits a channel into (namespace name, rest) the way Centrifugo does: the private prefix
    /// is ignored and the namespace is the part before the first namespace boundary. For channels
    /// without a boundary the namespace is "" and the rest is the whole channel.
    fn split_namespace<'c>(&self, channel: &'c str) -> (&'c str, &'c str) {
        let boundary = self.channel.namespace_boundary.as_str();
        let trimmed = channel
            .strip_prefix(self.channel.private_prefix.as_str())
            .filter(|_| !self.channel.private_prefix.is_empty())
            .unwrap_or(channel);
        if !boundary.is_empty()
            && let Some((ns, rest)) = trimmed.split_once(boundary)
        {
            return (ns, rest);
        }
        ("", channel)
    }

    /// Resolves the namespace and options of a channel.
    ///
    /// The private prefix is stripped first (and reported in [`ResolvedChannel::private`]); if
    /// the remainder contains the namespace boundary, the part before the first boundary names
    /// the namespace (an empty name means no namespace). An unknown namespace gives
    /// [`ChannelError::UnknownNamespace`] (client error 102). This does not check the channel
    /// name itself; see [`Config::check_channel`].
    pub fn channel_options(&self, channel: &str) -> Result<ResolvedChannel<'_>, ChannelError> {
        let private = self.is_private_channel(channel);
        let (ns_name, _) = self.split_namespace(channel);
        let (namespace, options, slot) = if ns_name.is_empty() {
            (
                None,
                &self.channel.without_namespace,
                Slot::WithoutNamespace,
            )
        } else {
            let (i, ns) = self
                .find_namespace(ns_name)
                .and_then(|i| Some((i, self.channel.namespaces.get(i)?)))
                .ok_or_else(|| ChannelError::UnknownNamespace(ns_name.to_owned()))?;
            (Some(ns.name.as_str()), &ns.options, Slot::Namespace(i))
        };
        let publication_data_format = if options.publication_data_format == DataFormat::Any {
            &self.channel.publication_data_format
        } else {
            &options.publication_data_format
        };
        Ok(ResolvedChannel {
            namespace,
            options,
            private,
            history_meta_ttl: options
                .history_meta_ttl
                .unwrap_or(self.channel.history_meta_ttl),
            publication_data_format,
            slot,
        })
    }

    /// Resolves a channel like [`Config::channel_options`] and also checks its name: not empty,
    /// at most `channel.max_length` bytes (0 = unlimited), and either matching the namespace
    /// `channel_regex` (applied to the part after the namespace boundary, or to the whole
    /// channel without a namespace) or, with no regex configured, ASCII only.
    pub fn check_channel(&self, channel: &str) -> Result<ResolvedChannel<'_>, ChannelError> {
        if channel.is_empty() {
            return Err(ChannelError::InvalidName);
        }
        let max = self.channel.max_length;
        if max > 0 && channel.len() > max {
            return Err(ChannelError::TooLong {
                len: channel.len(),
                max,
            });
        }
        let resolved = self.channel_options(channel)?;
        let pattern = resolved.options.channel_regex.as_str();
        let valid = if pattern.is_empty() {
            channel.is_ascii()
        } else {
            let (_, rest) = self.split_namespace(channel);
            let cached = match resolved.slot {
                Slot::WithoutNamespace => self.index.without_namespace_regex.as_ref(),
                Slot::Namespace(i) => self.index.namespace_regex.get(i).and_then(Option::as_ref),
            };
            match cached {
                Some((p, re)) if p == pattern => re.is_match(rest),
                _ => Regex::new(pattern).is_ok_and(|re| re.is_match(rest)),
            }
        };
        if valid {
            Ok(resolved)
        } else {
            Err(ChannelError::InvalidName)
        }
    }

    /// True when `user` may subscribe to a user-limited channel without a token.
    ///
    /// That requires `allow_user_limited_channels` in the channel's options, a channel containing
    /// `channel.user_boundary`, and `user` among the ids after the last boundary (separated by
    /// `channel.user_separator`). Anonymous users ("") and unknown namespaces are never allowed.
    pub fn user_allowed_in_channel(&self, channel: &str, user: &str) -> bool {
        if user.is_empty() {
            return false;
        }
        let boundary = self.channel.user_boundary.as_str();
        if boundary.is_empty() {
            return false;
        }
        let Ok(resolved) = self.channel_options(channel) else {
            return false;
        };
        if !resolved.options.allow_user_limited_channels {
            return false;
        }
        let Some((_, users)) = channel.rsplit_once(boundary) else {
            return false;
        };
        let separator = self.channel.user_separator.as_str();
        if separator.is_empty() {
            users == user
        } else {
            users.split(separator).any(|u| u == user)
        }
    }

    /// The personal channel of a user: `[namespace + boundary] + user_boundary + user`, using
    /// `client.subscribe_to_user_personal_channel.personal_channel_namespace`.
    pub fn personal_channel(&self, user: &str) -> String {
        let ns = &self
            .client
            .subscribe_to_user_personal_channel
            .personal_channel_namespace;
        let mut out = String::new();
        if !ns.is_empty() {
            out.push_str(ns);
            out.push_str(&self.channel.namespace_boundary);
        }
        out.push_str(&self.channel.user_boundary);
        out.push_str(user);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Namespace;

    fn config() -> Config {
        let mut c = Config::default();
        c.channel.without_namespace.presence = true;
        c.channel.namespaces.push(Namespace {
            name: "chat".to_owned(),
            options: ChannelOptions {
                allow_user_limited_channels: true,
                history_meta_ttl: Some(Duration::from_secs(60)),
                publication_data_format: DataFormat::Json,
                ..ChannelOptions::default()
            },
        });
        c.channel.namespaces.push(Namespace {
            name: "strict".to_owned(),
            options: ChannelOptions {
                channel_regex: "^[a-z]+$".to_owned(),
                ..ChannelOptions::default()
            },
        });
        c.prepare();
        c
    }

    #[test]
    fn resolves_namespaces_and_private_prefix() {
        let c = config();
        let r = c.channel_options("news").expect("no ns");
        assert_eq!(r.namespace, None);
        assert!(r.options.presence);
        assert!(!r.private);
        assert_eq!(r.history_meta_ttl, Duration::from_secs(720 * 3600));
        assert_eq!(*r.publication_data_format, DataFormat::Any);

        let r = c.channel_options("chat:room:1").expect("chat");
        assert_eq!(r.namespace, Some("chat"));
        assert!(r.options.allow_user_limited_channels);
        assert_eq!(r.history_meta_ttl, Duration::from_secs(60));
        assert_eq!(*r.publication_data_format, DataFormat::Json);

        let r = c.channel_options("$chat:secret").expect("private chat");
        assert_eq!(r.namespace, Some("chat"));
        assert!(r.private);

        let r = c.channel_options("$plain").expect("private plain");
        assert_eq!(r.namespace, None);
        assert!(r.private);

        let r = c.channel_options(":x").expect("empty ns");
        assert_eq!(r.namespace, None);

        assert_eq!(
            c.channel_options("nope:x")
                .map(|r| r.namespace)
                .unwrap_err(),
            ChannelError::UnknownNamespace("nope".to_owned())
        );
        assert!(matches!(
            c.channel_options("$nope:x"),
            Err(ChannelError::UnknownNamespace(n)) if n == "nope"
        ));
    }

    #[test]
    fn works_without_prepare_and_after_changes() {
        let mut c = config();
        c.channel.namespaces.swap(0, 1);
        assert_eq!(
            c.channel_options("chat:x").expect("ok").namespace,
            Some("chat")
        );
        c.channel.namespaces[0].options.channel_regex = "^[0-9]+$".to_owned();
        assert!(c.check_channel("strict:123").is_ok());
        assert!(c.check_channel("strict:abc").is_err());
        let mut fresh = Config::default();
        fresh.channel.namespaces.push(Namespace {
            name: "ns".to_owned(),
            options: ChannelOptions::default(),
        });
        assert_eq!(
            fresh.channel_options("ns:x").expect("ok").namespace,
            Some("ns")
        );
    }

    #[test]
    fn checks_channel_names() {
        let c = config();
        assert!(c.check_channel("strict:abc").is_ok());
        assert_eq!(
            c.check_channel("strict:ABC")
                .map(|r| r.namespace)
                .unwrap_err(),
            ChannelError::InvalidName
        );
        assert_eq!(
            c.check_channel("héllo").err(),
            Some(ChannelError::InvalidName)
        );
        assert_eq!(c.check_channel("").err(), Some(ChannelError::InvalidName));
        let long = "a".repeat(256);
        assert_eq!(
            c.check_channel(&long).err(),
            Some(ChannelError::TooLong { len: 256, max: 255 })
        );
        assert!(c.check_channel(&long[..255]).is_ok());
        assert!(matches!(
            c.check_channel("other:x"),
            Err(ChannelError::UnknownNamespace(_))
        ));
    }

    #[test]
    fn user_limited_channels() {
        let c = config();
        assert!(c.user_allowed_in_channel("chat:dialog#42,43", "42"));
        assert!(c.user_allowed_in_channel("chat:dialog#42,43", "43"));
        assert!(!c.user_allowed_in_channel("chat:dialog#42,43", "4"));
        assert!(!c.user_allowed_in_channel("chat:dialog#42,43", ""));
        assert!(c.user_allowed_in_channel("chat:a#b#7", "7"));
        assert!(!c.user_allowed_in_channel("chat:dialog", "42"));
        // Not enabled without namespace.
        assert!(!c.user_allowed_in_channel("dialog#42", "42"));
        // Unknown namespace.
        assert!(!c.user_allowed_in_channel("zzz:dialog#42", "42"));
    }

    #[test]
    fn personal_channels() {
        let mut c = config();
        assert_eq!(c.personal_channel("42"), "#42");
        c.client
            .subscribe_to_user_personal_channel
            .personal_channel_namespace = "personal".to_owned();
        assert_eq!(c.personal_channel("42"), "personal:#42");
    }
}
