//! The error codes of the engine calls that several routes make, named once so that the
//! route table (`api_routes!` in `mod.rs`) lists a route's codes as the calls its handler
//! makes. Codes every route answers, and those a route's shape implies (a JSON body, a
//! query, a path parameter), are added by `openapi::RouteDoc::codes`.

use crate::error::ErrorCode::{self, *};
use crate::error::Field::*;

/// `Engine::admit`, which every creating route runs (and the rollback of a completed
/// deployment): the spec's own checks (`engine::validate`), its binding to hosts, its
/// strategy and target, its images, its hooks (`pin_hooks`), the app's port, deployment
/// under way and replica quota, and the strategy's own `validate`.
pub const ADMIT: &[ErrorCode] = &[
    Invalid(App),
    Invalid(Replicas),
    Invalid(Image),
    Invalid(Variants),
    Invalid(HealthCheckPath),
    Invalid(LivenessFailures),
    Invalid(HealthCheckTimeout),
    Invalid(Env),
    Invalid(Secrets),
    Invalid(Cpu),
    Invalid(Memory),
    Invalid(Volume),
    Invalid(Constraint),
    Invalid(TrafficRouter),
    Invalid(Port),
    Invalid(HealthCheckPort),
    Invalid(ContainerPort),
    Invalid(Hosts),
    Invalid(PathPrefix),
    Invalid(Tls),
    HostTaken,
    Invalid(Strategy),
    Invalid(CloudProvider),
    Invalid(HooksTimeout),
    Invalid(HooksRetries),
    Invalid(HooksPre),
    Invalid(HooksVerify),
    Invalid(HooksPost),
    Invalid(HooksRollback),
    DeploymentInProgress,
    Invalid(ReplicaQuota),
    Invalid(Params),
    PluginFailed,
];

/// `Engine::start_deploy_phase`: running a pending deployment (execute, deploy, and the
/// rollback of a completed one).
pub const START: &[ErrorCode] = &[DeploymentNotFound, NotPending, DeploymentInProgress];

/// `Engine::rollback`'s own refusals. Rolling back a completed deployment creates and runs
/// the one that brings the previous release back: `ADMIT` and `START` too.
pub const ROLLBACK: &[ErrorCode] = &[DeploymentNotFound, CannotRollBack, NothingToRollBackTo, NotCurrentRelease];
