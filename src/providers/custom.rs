//! User-defined providers: a projected token and templated env vars, all
//! from settings (`customProviders`), switched on by one ServiceAccount
//! annotation. Settings validation has already checked names, paths and
//! templates, so resolving cannot fail.

use super::{projected_token_volume, Context, Resolution};
use crate::podedit::{Injection, Mount};
use crate::settings::CustomProvider;

/// The injection of `provider` when the (effective) ServiceAccount carries its annotation.
pub fn resolve(provider: &CustomProvider, ctx: &Context) -> Resolution {
    let value = ctx
        .sa_annotations
        .get(provider.service_account_annotation.as_str())
        .copied()
        .filter(|v| !v.is_empty())?;
    let mount_path = provider.mount_path.trim_end_matches('/');
    let token_file = format!("{mount_path}/{}", provider.token_path);
    let env_groups = provider
        .env
        .iter()
        .map(|env| {
            let mut entry = serde_json::Map::new();
            entry.insert("name".to_string(), env.name.clone().into());
            match (&env.value, &env.value_from) {
                (Some(template), _) => {
                    let value = expand(template, value, &token_file, ctx);
                    entry.insert("value".to_string(), value.into());
                }
                (None, Some(source)) => {
                    entry.insert("valueFrom".to_string(), source.clone());
                }
                (None, None) => {}
            }
            vec![serde_json::Value::Object(entry)]
        })
        .collect();
    Some(Injection {
        volumes: vec![projected_token_volume(
            &provider.volume_name,
            &provider.audience,
            provider.token_expiration_seconds,
            &provider.token_path,
            provider.token_default_mode,
        )],
        mounts: vec![Mount {
            volume: provider.volume_name.clone(),
            path: mount_path.to_string(),
        }],
        env_groups,
        ..Injection::new(provider.name.clone())
    })
}

/// Replaces `{value}`, `{tokenFile}`, `{namespace}` and `{serviceAccount}`
/// in one pass, so a substituted value is never expanded again.
fn expand(template: &str, value: &str, token_file: &str, ctx: &Context) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some((before, after)) = rest.split_once('{') {
        out.push_str(before);
        let Some((name, tail)) = after.split_once('}') else {
            out.push('{');
            rest = after;
            break;
        };
        match name {
            "value" => out.push_str(value),
            "tokenFile" => out.push_str(token_file),
            "namespace" => out.push_str(&ctx.sa.namespace),
            "serviceAccount" => out.push_str(&ctx.sa.name),
            // Settings validation refuses unknown placeholders; keep them verbatim.
            other => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}
