//! The fields a request can get wrong: each is the `field` of a 400 and gives its code,
//! `invalid_<field>`. A closed list, so the codes can be listed (`ErrorCode::ALL`).

use crate::model::HookStage;

/// Declares every field once, with its name as the answer's `field` says it and what
/// being wrong means; the code is `invalid_` and the name.
macro_rules! fields {
    ($($variant:ident = $name:literal, $description:literal;)*) => {
        /// A field of a request (a deployment spec's, a query's, a plugin upload's) that a
        /// 400 names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field {
            $($variant,)*
        }

        impl Field {
            /// Every field, in the order of the table.
            pub const ALL: &'static [Field] = &[$(Field::$variant),*];

            /// The name the answer's `field` carries (`replicas`, `hooks.pre`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Field::$variant => $name,)*
                }
            }

            /// The wire code of a 400 about this field: `invalid_<field>`.
            pub fn code(self) -> &'static str {
                match self {
                    $(Field::$variant => concat!("invalid_", $name),)*
                }
            }

            /// What was wrong with it, for the API's documentation.
            pub fn description(self) -> &'static str {
                match self {
                    $(Field::$variant => $description,)*
                }
            }
        }
    };
}

fields! {
    App = "app", "the app name is not 1 to 63 lowercase letters, digits and '-', starting with a letter";
    Image = "image", "the image is empty, not a valid reference, not in the engine with --pull never, or is given beside A/B variants";
    Replicas = "replicas", "the replica count is 0, over 100, or over the app's replica quota";
    ReplicaQuota = "replica_quota", "the replica quota is not 1 to the server's --max-replicas";
    Strategy = "strategy", "no installed, enabled strategy plugin has this name";
    Params = "params", "the strategy's own validate refused the deployment (its parameters)";
    Variants = "variants", "the A/B variants are fewer than two, badly named, repeated, without an image, or do not sum to 100%";
    Variant = "variant", "the deployment has no variant of this name";
    Port = "port", "the port is 0, used by another app, cannot be listened on, or is not the app's";
    HealthCheckPath = "health_check_path", "the health check path does not start with '/' or holds spaces";
    HealthCheckPort = "health_check_port", "the health check port is 0";
    HealthCheckTimeout = "health_check_timeout", "the health check timeout is not 1 to 3600 seconds";
    LivenessFailures = "liveness_failures", "the liveness failures are not 1 to 100 probes";
    ContainerPort = "container_port", "the container port is 0";
    Env = "env", "an environment variable's name is not letters, digits and '_', or is PORT";
    Secrets = "secrets", "a secret's name is not letters, digits and '_', is PORT, or is also a plain --env variable";
    Cpu = "cpu", "the CPU limit is not more than 0 and at most 256";
    Memory = "memory", "the memory limit is not a size such as 512M or 1G";
    Volume = "volume", "a volume is not NAME:/path";
    Constraint = "constraint", "a placement constraint is not KEY==VALUE or KEY!=VALUE";
    TrafficRouter = "traffic_router", "the traffic router is not one the server has (builtin)";
    CloudProvider = "cloud_provider", "no deployment target of this name is configured, or it cannot be reached";
    Hosts = "hosts", "a host name to bind the app to is not valid";
    PathPrefix = "path_prefix", "the path prefix to bind the app under is not valid";
    Tls = "tls", "--tls acme on a server without ACME, or without host names";
    HooksTimeout = "hooks.timeout", "the hook timeout is not 1 to 3600 seconds";
    HooksRetries = "hooks.retries", "the hook retries are more than 10";
    HooksPre = "hooks.pre", "a pre hook does not parse, names no usable hook plugin (or another version), or a webhook host not allowed";
    HooksVerify = "hooks.verify", "a verify hook does not parse, names no usable hook plugin (or another version), or a webhook host not allowed";
    HooksPost = "hooks.post", "a post hook does not parse, names no usable hook plugin (or another version), or a webhook host not allowed";
    HooksRollback = "hooks.rollback", "a rollback hook does not parse, names no usable hook plugin (or another version), or a webhook host not allowed";
    Pipeline = "pipeline", "the pipeline name is not lowercase letters, digits and '-'";
    Host = "host", "the certificate's host name is not valid";
    Registry = "registry", "the registry is not a host such as registry.example.com or 127.0.0.1:5000, or its login lacks a user name or a password";
    Cert = "cert", "the certificate or its key is refused (not for the host, expired, not a pair)";
    Plugin = "plugin", "the component is empty, over 32 MiB (413), or does not load (not a component, an API version the server does not run, a signature the trust policy refuses, a name taken)";
    Source = "source", "the plugin's source is over 500 characters";
    Signature = "signature", "the minisign signature is over 4 KiB";
    Allow = "allow", "a grant is not `jobs`, `http` or `http:HOST:PORT`";
    Body = "body", "the JSON body does not parse, has a value of the wrong type or an unknown field, or is over 1 MiB (413)";
    Query = "query", "the query string does not parse, or has an unknown parameter";
    Limit = "limit", "limit is not 1 to 1000";
    Offset = "offset", "offset is below 0";
    Status = "status", "the status filter is not a deployment status";
}

impl Field {
    /// The hooks of a stage (`hooks.pre`, ...).
    pub fn hook(stage: HookStage) -> Field {
        match stage {
            HookStage::Pre => Field::HooksPre,
            HookStage::Verify => Field::HooksVerify,
            HookStage::Post => Field::HooksPost,
            HookStage::Rollback => Field::HooksRollback,
        }
    }
}
