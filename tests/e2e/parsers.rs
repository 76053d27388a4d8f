//! Property tests of what users type: the flag parsers (`--variant`, `--steps`, `--env`,
//! `--volume`, `--memory`, `--cpu`, `--constraint`) and the API's deployment bodies. Whatever the input,
//! no panic, and every refusal is a message that says what was wrong.

use hivemind::engine::check_spec;
use hivemind::model::{DeploymentSpec, VariantSpec, parse_constraint, parse_key_value, parse_memory, parse_volume};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn variant_parsing_never_panics_and_explains_refusals(text in ".{0,80}") {
        match VariantSpec::parse(&text) {
            Ok(v) => prop_assert!(v.percentage <= 100),
            Err(e) => prop_assert!(e.contains("--variant"), "{e}"),
        }
    }

    #[test]
    fn well_formed_variants_round_trip(name in "[a-z][a-z0-9-]{0,20}", image in "[a-z0-9:./-]{1,30}", pct in 0u32..=100) {
        let v = VariantSpec::parse(&format!("name={name},image={image},percentage={pct}")).unwrap();
        prop_assert_eq!((v.name, v.image, v.percentage), (name, image, pct));
    }

    #[test]
    fn steps_parsing_never_panics_and_accepts_only_rising_percentages(text in "[0-9%, ]{0,30}") {
        match hivemind_sdk::percentages(&text) {
            Ok(steps) => {
                prop_assert!(steps.iter().all(|s| (1..=100).contains(s)));
                prop_assert!(steps.windows(2).all(|w| w[0] < w[1]));
            }
            Err(e) => prop_assert!(e.to_string().contains("steps must"), "{e}"),
        }
    }

    #[test]
    fn env_parsing_keeps_the_value_whole(key in "[A-Z_][A-Z0-9_]{0,10}", value in ".{0,40}") {
        prop_assert_eq!(parse_key_value(&format!("{key}={value}")).unwrap(), (key, value));
    }

    #[test]
    fn env_parsing_refuses_text_without_a_key(text in "[^=]{0,20}") {
        prop_assert!(parse_key_value(&text).unwrap_err().contains("is not KEY=VALUE"));
    }

    #[test]
    fn volume_parsing_never_panics(text in ".{0,60}") {
        match parse_volume(&text) {
            Ok((name, path)) => prop_assert!(!name.is_empty() && path.starts_with('/')),
            Err(e) => prop_assert!(e.contains("volume"), "{e}"),
        }
    }

    #[test]
    fn constraint_parsing_never_panics_and_explains_refusals(text in ".{0,60}") {
        if let Err(e) = parse_constraint(&text) {
            prop_assert!(e.contains("constraint") && e.contains("node.labels.zone==a"), "{e}");
        }
    }

    #[test]
    fn constraints_as_swarm_writes_them_are_accepted(
        key in "(node\\.(labels\\.[a-z][a-z0-9_-]{0,10}|role|hostname|platform\\.os)|engine\\.labels\\.[a-z]{1,8})",
        op in "(==|!=)",
        value in "[A-Za-z0-9_.-]{1,12}",
    ) {
        let constraint = format!("{key}{op}{value}");
        prop_assert!(parse_constraint(&constraint).is_ok(), "{constraint}");
        let spaced = format!("{key} {op} {value}");
        prop_assert!(parse_constraint(&spaced).is_ok(), "{}", spaced);
    }

    #[test]
    fn memory_parsing_never_panics_and_stays_in_range(text in "[0-9.]{0,8}[a-zA-Z]{0,3}") {
        match parse_memory(&text) {
            Ok(bytes) => prop_assert!((4 << 20..=1u64 << 40).contains(&bytes)),
            Err(e) => prop_assert!(e.contains("memory"), "{e}"),
        }
    }

    #[test]
    fn deployment_bodies_never_panic(json in any_json(3)) {
        let text = json.to_string();
        // Deserialising and then checking must refuse with a message, never panic.
        if let Ok(spec) = serde_json::from_str::<DeploymentSpec>(&text)
            && let Err(e) = check_spec(&spec) {
                prop_assert!(e.status == 400 && e.field.is_some() && !e.message.is_empty(), "{e:?}");
            }
    }

    #[test]
    fn cpu_values_outside_zero_to_256_are_refused_by_name(cpu in -1000.0f64..1000.0) {
        let mut spec = DeploymentSpec::new("web", "sleep 1");
        spec.resources.cpu = Some(cpu);
        match check_spec(&spec) {
            Ok(()) => prop_assert!(cpu > 0.0 && cpu <= 256.0),
            Err(e) => {
                prop_assert!(!(cpu > 0.0 && cpu <= 256.0));
                prop_assert_eq!(e.field.as_deref(), Some("cpu"));
            }
        }
    }
}

fn any_json(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[a-z_]{0,12}".prop_map(serde_json::Value::from),
    ];
    let keys = prop_oneof![
        Just("app".to_string()),
        Just("image".to_string()),
        Just("replicas".to_string()),
        Just("strategy".to_string()),
        Just("params".to_string()),
        Just("variants".to_string()),
        Just("resources".to_string()),
        "[a-z]{1,8}",
    ];
    leaf.prop_recursive(depth, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every command a user can run shows examples in its --help.
#[test]
fn every_command_has_examples_in_its_help() {
    fn walk(cmd: &mut clap::Command, path: String, missing: &mut Vec<String>) {
        let subs: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
        if subs.is_empty() || cmd.get_name() == "completions" {
            let help = cmd.render_long_help().to_string();
            if !help.contains("Example") {
                missing.push(path);
            }
            return;
        }
        for name in subs {
            if name == "help" {
                continue;
            }
            let sub = cmd.find_subcommand_mut(&name).unwrap();
            walk(sub, format!("{path} {name}"), missing);
        }
    }
    let mut missing = Vec::new();
    let mut root = <hivemind_cli::Cli as clap::CommandFactory>::command();
    root.build();
    walk(&mut root, "hivemind".into(), &mut missing);
    assert!(missing.is_empty(), "no examples in --help of: {missing:?}");
}
