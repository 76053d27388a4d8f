//! Checks of a deployment spec that need nothing but the spec.

use crate::error::{Field, UserError};
use crate::model::DeploymentSpec;

pub fn spec(s: &DeploymentSpec) -> Result<(), UserError> {
    app_name(&s.app)?;
    if s.replicas == 0 {
        return Err(UserError::invalid(Field::Replicas, "replicas must be at least 1 (got 0)"));
    }
    if s.replicas > 100 {
        return Err(UserError::invalid(Field::Replicas, format!("replicas must be at most 100 (got {})", s.replicas)));
    }
    if s.variants.is_empty() && s.image.trim().is_empty() {
        return Err(UserError::invalid(Field::Image, "the image is empty; give an image such as hivemind-demo:v2"));
    }
    variants(s)?;
    if !s.health_check_path.starts_with('/') || s.health_check_path.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(UserError::invalid(
            Field::HealthCheckPath,
            format!("health check path `{}` must start with '/' and hold no spaces", s.health_check_path),
        ));
    }
    if s.liveness_failures == 0 || s.liveness_failures > 100 {
        return Err(UserError::invalid(
            Field::LivenessFailures,
            format!("liveness failures must be 1 to 100 probes (got {})", s.liveness_failures),
        ));
    }
    if s.health_check_timeout == 0 || s.health_check_timeout > 3600 {
        return Err(UserError::invalid(
            Field::HealthCheckTimeout,
            format!("health check timeout must be 1 to 3600 seconds (got {})", s.health_check_timeout),
        ));
    }
    for (field, flag, keys) in [(Field::Env, "--env", &s.env), (Field::Secrets, "--secret", &s.secrets)] {
        for key in keys.keys() {
            let ok = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(UserError::invalid(
                    field,
                    format!(
                        "environment variable name `{key}` must be letters, digits and '_', not starting with a digit"
                    ),
                ));
            }
            if key == "PORT" {
                return Err(UserError::invalid(
                    field,
                    format!("PORT is set by Hivemind for each replica; leave it out of {flag}"),
                ));
            }
        }
    }
    if let Some(key) = s.secrets.keys().find(|k| s.env.contains_key(*k)) {
        return Err(UserError::invalid(
            Field::Secrets,
            format!("`{key}` is given both as --env and as --secret; keep one (--secret, if its value is secret)"),
        ));
    }
    if let Some(cpu) = s.resources.cpu
        && !(cpu > 0.0 && cpu <= 256.0)
    {
        return Err(UserError::invalid(Field::Cpu, format!("cpu must be more than 0 and at most 256 (got {cpu})")));
    }
    if let Some(memory) = &s.resources.memory {
        crate::model::parse_memory(memory).map_err(|e| UserError::invalid(Field::Memory, e))?;
    }
    for v in &s.resources.volumes {
        crate::model::parse_volume(v).map_err(|e| UserError::invalid(Field::Volume, e))?;
    }
    for c in &s.resources.constraints {
        crate::model::parse_constraint(c).map_err(|e| UserError::invalid(Field::Constraint, e))?;
    }
    if let Some(router) = s.traffic_router.as_deref().filter(|r| *r != "builtin") {
        return Err(UserError::invalid(
            Field::TrafficRouter,
            format!("traffic router `{router}` is not available; the routers are: builtin (Hivemind's own L7 proxy)"),
        ));
    }
    if s.port == Some(0) {
        return Err(UserError::invalid(Field::Port, "port must be 1 to 65535; leave it out to get a free one"));
    }
    if s.health_check_port == Some(0) {
        return Err(UserError::invalid(Field::HealthCheckPort, "health check port must be 1 to 65535"));
    }
    if s.container_port == 0 {
        return Err(UserError::invalid(Field::ContainerPort, "container port must be 1 to 65535"));
    }
    Ok(())
}

/// A/B variants: at least two, distinct names that can be version labels, images, and
/// shares that sum to 100.
fn variants(s: &crate::model::DeploymentSpec) -> Result<(), UserError> {
    if s.variants.is_empty() {
        return Ok(());
    }
    if s.variants.len() < 2 {
        return Err(UserError::invalid(Field::Variants, "an A/B test needs at least two --variant"));
    }
    if !s.image.is_empty() && s.image != s.variants[0].image {
        return Err(UserError::invalid(Field::Image, "an A/B test takes its images from --variant; leave out --image"));
    }
    let mut seen = std::collections::HashSet::new();
    for v in &s.variants {
        let label_ok = !v.name.is_empty()
            && v.name.len() <= 40
            && v.name.starts_with(|c: char| c.is_ascii_lowercase())
            && v.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let reserved = v.name.len() > 1 && v.name.starts_with('r') && v.name[1..].chars().all(|c| c.is_ascii_digit());
        if !label_ok || reserved {
            return Err(UserError::invalid(
                Field::Variants,
                format!(
                    "variant name `{}` must be lowercase letters, digits and '-', start with a letter, and not look like a release label (r1, r2, ...)",
                    v.name
                ),
            ));
        }
        if !seen.insert(v.name.as_str()) {
            return Err(UserError::invalid(Field::Variants, format!("variant name `{}` appears twice", v.name)));
        }
        if v.image.trim().is_empty() {
            return Err(UserError::invalid(Field::Variants, format!("variant `{}` has no image", v.name)));
        }
    }
    let total: u32 = s.variants.iter().map(|v| v.percentage).sum();
    if total != 100 {
        let shares: Vec<String> = s.variants.iter().map(|v| format!("{}={}%", v.name, v.percentage)).collect();
        return Err(UserError::invalid(
            Field::Variants,
            format!("the variants' percentages must sum to 100, not {total} ({})", shares.join(", ")),
        ));
    }
    Ok(())
}

/// App names end up in container names, labels and replica ids: keep them DNS-label safe.
pub fn app_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(UserError::invalid(
            Field::App,
            format!("app name `{name}` must be 1 to 63 lowercase letters, digits and '-', starting with a letter"),
        ))
    }
}
