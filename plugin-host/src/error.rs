//! Why a host call failed, as the capabilities, the scope and the bindings all say it.
//! On its own so that each of them depends on it, and none on the others for it.

/// Why a host call failed. The first three reach the guest as the WIT `error` of the
/// same name, with a message for people; `Trap` ends the call.
#[derive(Debug)]
pub enum CapabilityError {
    /// The capability does not reach that far (another app's replica, a version the
    /// deployment does not own).
    Denied(String),
    /// The arguments were wrong.
    Invalid(String),
    /// The host tried and the world said no.
    Failed(String),
    /// The call cannot go on: the step fails with this error.
    Trap(wasmtime::Error),
}

impl From<anyhow::Error> for CapabilityError {
    fn from(e: anyhow::Error) -> Self {
        CapabilityError::Failed(format!("{e:#}"))
    }
}
