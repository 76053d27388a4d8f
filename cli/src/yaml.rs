//! `--output yaml`: JSON values written as block-style YAML.

/// A small YAML emitter for JSON values (block style; strings quoted when they must be).
pub fn to_yaml(value: &serde_json::Value, indent: usize) -> String {
    use serde_json::Value;
    let pad = " ".repeat(indent);
    let scalar = |v: &Value| match v {
        Value::Null => "null".to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && !s.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c) || c.is_ascii_digit())
                && !s.contains(": ")
                && !s.contains(" #")
                && !s.ends_with([' ', ':'])
                && !["true", "false", "null", "yes", "no", "~"].contains(&s.to_ascii_lowercase().as_str())
                && !s.contains('\n');
            if plain { s.clone() } else { serde_json::to_string(s).unwrap() }
        }
        other => other.to_string(),
    };
    match value {
        Value::Object(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| match v {
                Value::Object(m) if !m.is_empty() => format!("{pad}{k}:\n{}", to_yaml(v, indent + 2)),
                Value::Array(a) if !a.is_empty() => format!("{pad}{k}:\n{}", to_yaml(v, indent)),
                _ => format!(
                    "{pad}{k}: {}\n",
                    match v {
                        Value::Object(_) => "{}".into(),
                        Value::Array(_) => "[]".into(),
                        _ => scalar(v),
                    }
                ),
            })
            .collect(),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|v| match v {
                Value::Object(m) if !m.is_empty() => {
                    let inner = to_yaml(v, indent + 2);
                    format!("{pad}- {}", inner.trim_start())
                }
                Value::Array(a) if !a.is_empty() => format!("{pad}-\n{}", to_yaml(v, indent + 2)),
                _ => format!("{pad}- {}\n", scalar(v)),
            })
            .collect(),
        Value::Object(_) => format!("{pad}{{}}\n"),
        Value::Array(_) => format!("{pad}[]\n"),
        _ => format!("{pad}{}\n", scalar(value)),
    }
}
