//! The configuration-key flags of the root command and `serve`, named as Centrifugo names them
//! (`--http_server.port`, `-p`, `--log.level`, ...). Each one set becomes an override of its key;
//! keys Gyre does not know are then reported like unknown file keys.

use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};
use serde_json::Value;

/// How a flag takes its value.
#[derive(Clone, Copy)]
enum Takes {
    /// `--x` (true), `--x=false`.
    Switch,
    /// `--x VALUE`, typed by the key's default when the configuration is loaded.
    Value,
}

/// A flag: its key path, what it takes, an optional short letter and extra long names.
struct Flag {
    key: &'static str,
    takes: Takes,
    short: Option<char>,
    aliases: &'static [&'static str],
    help: &'static str,
}

const fn flag(key: &'static str, takes: Takes, help: &'static str) -> Flag {
    Flag {
        key,
        takes,
        short: None,
        aliases: &[],
        help,
    }
}

const FLAGS: &[Flag] = &[
    flag(
        "pid_file",
        Takes::Value,
        "write the process id to this file",
    ),
    Flag {
        short: Some('a'),
        aliases: &["address"],
        ..flag(
            "http_server.address",
            Takes::Value,
            "interface address to listen on",
        )
    },
    Flag {
        short: Some('p'),
        aliases: &["port"],
        ..flag(
            "http_server.port",
            Takes::Value,
            "port to bind the HTTP server to",
        )
    },
    flag(
        "http_server.internal_address",
        Takes::Value,
        "address for internal endpoints",
    ),
    Flag {
        aliases: &["internal_port"],
        ..flag(
            "http_server.internal_port",
            Takes::Value,
            "port for internal endpoints",
        )
    },
    flag("engine.type", Takes::Value, "engine: memory or redis"),
    flag("broker.enabled", Takes::Switch, "enable a separate broker"),
    flag("broker.type", Takes::Value, "broker type"),
    flag(
        "presence_manager.enabled",
        Takes::Switch,
        "enable a separate presence manager",
    ),
    flag(
        "presence_manager.type",
        Takes::Value,
        "presence manager type",
    ),
    flag("map_broker.type", Takes::Value, "map broker type"),
    flag(
        "log.level",
        Takes::Value,
        "trace, debug, info, warn, error, fatal or none",
    ),
    flag("log.file", Takes::Value, "append logs to this file"),
    flag("debug.enabled", Takes::Switch, "enable debug endpoints"),
    Flag {
        aliases: &["admin"],
        ..flag(
            "admin.enabled",
            Takes::Switch,
            "enable the admin web interface",
        )
    },
    flag(
        "admin.external",
        Takes::Switch,
        "admin interface on the external port",
    ),
    flag(
        "admin.insecure",
        Takes::Switch,
        "admin interface without authentication",
    ),
    Flag {
        aliases: &["prometheus"],
        ..flag(
            "prometheus.enabled",
            Takes::Switch,
            "enable the Prometheus endpoint",
        )
    },
    flag("swagger.enabled", Takes::Switch, "enable the Swagger UI"),
    Flag {
        aliases: &["health"],
        ..flag(
            "health.enabled",
            Takes::Switch,
            "enable the health check endpoint",
        )
    },
    flag(
        "uni_websocket.enabled",
        Takes::Switch,
        "enable unidirectional WebSocket",
    ),
    flag(
        "uni_sse.enabled",
        Takes::Switch,
        "enable unidirectional SSE",
    ),
    flag(
        "uni_http_stream.enabled",
        Takes::Switch,
        "enable unidirectional HTTP streaming",
    ),
    flag("sse.enabled", Takes::Switch, "enable bidirectional SSE"),
    flag(
        "http_stream.enabled",
        Takes::Switch,
        "enable bidirectional HTTP streaming",
    ),
    flag(
        "init.enabled",
        Takes::Switch,
        "enable the connection init endpoint",
    ),
    flag(
        "client.insecure",
        Takes::Switch,
        "allow everything for clients (development only)",
    ),
    flag(
        "client.token.hmac_secret_key",
        Takes::Value,
        "HMAC secret for connection tokens",
    ),
    flag(
        "http_api.insecure",
        Takes::Switch,
        "no API key check (development only)",
    ),
    flag(
        "http_api.external",
        Takes::Switch,
        "serve the API on the external port",
    ),
    flag("http_api.key", Takes::Value, "server API key"),
    flag("grpc_api.enabled", Takes::Switch, "enable the GRPC API"),
    flag("grpc_api.port", Takes::Value, "GRPC API port"),
    flag(
        "uni_grpc.enabled",
        Takes::Switch,
        "enable unidirectional GRPC",
    ),
    flag("uni_grpc.port", Takes::Value, "unidirectional GRPC port"),
];

/// The key flags given on the command line, as `(key path, value)` overrides.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyFlags(pub(crate) Vec<(String, Value)>);

impl clap::Args for KeyFlags {
    fn augment_args(mut cmd: Command) -> Command {
        for f in FLAGS {
            let mut arg = Arg::new(f.key)
                .long(f.key)
                .help(f.help)
                .visible_aliases(f.aliases.iter().copied());
            if let Some(short) = f.short {
                arg = arg.short(short);
            }
            arg = match f.takes {
                Takes::Switch => arg
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true")
                    .value_parser(clap::value_parser!(bool))
                    .action(ArgAction::Set),
                Takes::Value => arg.value_name("VALUE").action(ArgAction::Set),
            };
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for KeyFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut out = Vec::new();
        for f in FLAGS {
            let value = match f.takes {
                Takes::Switch => matches.get_one::<bool>(f.key).map(|b| Value::Bool(*b)),
                Takes::Value => matches
                    .get_one::<String>(f.key)
                    .map(|s| Value::String(s.clone())),
            };
            if let Some(value) = value {
                out.push((f.key.to_owned(), value));
            }
        }
        Ok(KeyFlags(out))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}
