//! `cxbridge cxone plan | apply | export`: where CXone is, and each command's steps.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cxbridge::adapters::cxone::TokenFetcher;
use cxbridge::adapters::secrets_manager::SecretsManagerSource;
use cxbridge::cxone::{CxoneConfig, Profile};
use cxbridge::secrets::SecretSource;
use serde_json::Value;

use super::api::{Refused, SetupApi};
use super::model::{Kind, Setup};
use super::plan::{Action, Plan, plan};

/// Exit status of `plan` when CXone differs from the file.
pub const DRIFT: u8 = 2;

/// What the platform offers instead, for a command that needs the documented API.
pub fn platform_refusal(command: &str) -> String {
    format!(
        "`cxbridge cxone {command}` needs the documented API (CXBRIDGE_CXONE_PROFILE=documented), \
and this deployment uses the CXone platform (incontact), which has no API for webhook \
subscriptions, routing rules or integration targets; nothing was sent. On the platform: \
have each Studio script send its events with a REST API action to cxbridge's \
/webhooks/studio (README: \"Studio's REST API action\"), route with Studio's own skills and \
ACD settings, and start scripts with spawn signals (`kind: spawn`). Against the local stack, \
`CXBRIDGE_CXONE_PROFILE=documented make run` serves the documented API."
    )
}

/// The local stack's state file, if there is one.
fn state(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Where the commands find CXone: the usual `CXBRIDGE_CXONE_*` settings and the secret,
/// or, when `CXBRIDGE_CXONE_API_BASE` is not set, the local stack's state file.
pub struct Target {
    state: Option<Value>,
    local: bool,
    pub profile: Profile,
}

impl Target {
    pub fn find(state_path: &Path) -> Self {
        let state = state(state_path);
        let local = env("CXBRIDGE_CXONE_API_BASE").is_none() && state.is_some();
        let profile = env("CXBRIDGE_CXONE_PROFILE")
            .or_else(|| {
                state
                    .as_ref()
                    .filter(|_| local)
                    .and_then(|s| s["profile"].as_str().map(str::to_owned))
            })
            .map_or(Profile::InContact, |p| {
                if p.trim().eq_ignore_ascii_case("documented") {
                    Profile::Documented
                } else {
                    Profile::InContact
                }
            });
        Self {
            state,
            local,
            profile,
        }
    }

    fn local_value(&self, key: &str) -> Option<String> {
        self.state
            .as_ref()
            .filter(|_| self.local)
            .and_then(|s| s[key].as_str().map(str::to_owned))
    }

    /// `${NAME}` in a setup file: the environment, and for `CXBRIDGE_URL` the local stack's
    /// gateway when the environment has none.
    pub fn variable(&self, name: &str) -> Option<String> {
        env(name).or_else(|| match name {
            "CXBRIDGE_URL" => self.local_value("gateway"),
            _ => None,
        })
    }

    /// Refuses a command on the platform profile, before anything is read or sent.
    pub fn require_documented(&self, command: &str) -> Result<()> {
        if self.profile == Profile::Documented {
            Ok(())
        } else {
            bail!(platform_refusal(command))
        }
    }

    /// The CXone configuration, with the local stack's values where the environment has
    /// none.
    fn config(&self) -> Result<CxoneConfig> {
        let base = self.local_value("cxone");
        let lookup = |name: &str| {
            env(name).or_else(|| match name {
                "CXBRIDGE_CXONE_PROFILE" => Some("documented".into()),
                "CXBRIDGE_CXONE_API_BASE" => base.clone(),
                "CXBRIDGE_CXONE_TOKEN_URL" => {
                    base.as_ref().map(|b| format!("{b}/api/v2/oauth/token"))
                }
                _ => None,
            })
        };
        CxoneConfig::from_lookup(lookup).context("the CXone settings are not usable")
    }

    /// Reads the credentials from the secret and builds the API client.
    pub async fn connect(&self) -> Result<(SetupApi, String)> {
        let config = Arc::new(self.config()?);
        let api_base = config
            .api_base
            .clone()
            .context("set CXBRIDGE_CXONE_API_BASE (or run the local stack)")?;
        let secret_id = env("CXBRIDGE_SECRET_ID")
            .or_else(|| self.local_value("secretId"))
            .context("set CXBRIDGE_SECRET_ID to the secret holding cxone.clientId and cxone.clientSecret")?;
        // The local stack's emulator holds the local stack's secret.
        let sdk = match self.local_value("aws") {
            Some(endpoint) => crate::stack::emulator_config(&endpoint).await,
            None => cxbridge::aws::load_sdk_config(&cxbridge::aws::AwsSettings::from_env()?).await,
        };
        let secrets = SecretsManagerSource::new(
            aws_sdk_secretsmanager::Client::new(&sdk),
            secret_id.clone(),
            std::time::Duration::from_secs(60),
        );
        let credentials = secrets
            .current()
            .await
            .with_context(|| format!("cannot read the secret {secret_id}"))?
            .cxone
            .clone();
        let http =
            cxbridge::adapters::cxone::http_client(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
        let tokens = TokenFetcher::new(http.clone(), config.clone(), credentials);
        Ok((SetupApi::new(http, &api_base, tokens), api_base))
    }
}

/// A target's `retryPolicy.timeoutMs`.
fn timeout_of(object: &Value) -> u64 {
    object["retryPolicy"]["timeoutMs"]
        .as_u64()
        .unwrap_or(30_000)
}

/// Every object CXone holds, per kind.
async fn existing(api: &SetupApi) -> Result<Vec<(Kind, Vec<Value>)>> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        out.push((kind, api.list(kind).await?));
    }
    Ok(out)
}

/// `plan`: prints what `apply` would change; `DRIFT` when it would change anything.
pub async fn plan_command(file: &Path, state_path: &Path, prune: bool) -> Result<u8> {
    let target = Target::find(state_path);
    target.require_documented("plan")?;
    let setup = super::load(file, &|n| target.variable(n))?;
    let (api, _) = target.connect().await?;
    let plan = plan(&setup, &existing(&api).await?, prune);
    print!("{}", plan.render());
    Ok(if plan.drift() { DRIFT } else { 0 })
}

fn confirm() -> Result<bool> {
    use std::io::Write as _;
    print!("Apply these changes to CXone? Only 'yes' is accepted: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// Creates `object`; if CXone already has one of that name (409 with its id, a create
/// that raced another), updates that one instead.
async fn create(api: &SetupApi, kind: Kind, object: &Value) -> Result<String> {
    match api.create(kind, object).await {
        Ok(id) => Ok(id),
        Err(err) => {
            let existing = err
                .downcast_ref::<Refused>()
                .filter(|r| r.status == 409)
                .and_then(|r| r.body.get("id").and_then(Value::as_str))
                .map(str::to_owned);
            match existing {
                Some(id) => {
                    api.update(kind, &id, object).await?;
                    Ok(id)
                }
                None => Err(err),
            }
        }
    }
}

/// `apply`: makes CXone match the file, then health-tests each target it created or
/// changed. 0 when all is done and every test passed, 1 when a test failed.
pub async fn apply_command(
    file: &Path,
    state_path: &Path,
    auto_approve: bool,
    prune: bool,
) -> Result<u8> {
    let target = Target::find(state_path);
    target.require_documented("apply")?;
    let setup = super::load(file, &|n| target.variable(n))?;
    let (api, _) = target.connect().await?;
    let plan: Plan = plan(&setup, &existing(&api).await?, prune);
    print!("{}", plan.render());
    if !plan.drift() {
        println!("No changes: CXone matches {}.", file.display());
        return Ok(0);
    }
    if !auto_approve && !confirm()? {
        println!("Apply cancelled; nothing was changed.");
        return Ok(1);
    }
    let (mut created, mut updated, mut deleted) = (0, 0, 0);
    let mut to_test = Vec::new();
    for change in &plan.changes {
        let what = format!("{} {:?}", change.kind.label(), change.name);
        match (&change.action, &change.desired, &change.id) {
            (Action::Create, Some(object), _) => {
                let id = create(&api, change.kind, object)
                    .await
                    .with_context(|| format!("creating {what}"))?;
                println!("created {what} ({id})");
                created += 1;
                if change.kind == Kind::IntegrationTarget {
                    to_test.push((change.name.clone(), id, timeout_of(object)));
                }
            }
            (Action::Update(fields), Some(object), Some(id)) => {
                api.update(change.kind, id, object)
                    .await
                    .with_context(|| format!("updating {what}"))?;
                let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
                println!("updated {what} ({id}): {}", names.join(", "));
                updated += 1;
                if change.kind == Kind::IntegrationTarget {
                    to_test.push((change.name.clone(), id.clone(), timeout_of(object)));
                }
            }
            (Action::Delete { prune: true }, _, Some(id)) => {
                api.delete(change.kind, id)
                    .await
                    .with_context(|| format!("deleting {what}"))?;
                println!("deleted {what} ({id})");
                deleted += 1;
            }
            (Action::Update(_) | Action::Delete { prune: true }, _, None) => {
                bail!("CXone lists {what} without an id, so it cannot be changed")
            }
            _ => {}
        }
    }
    // Every target is tested, whatever another's test did.
    let mut failed = 0;
    for (name, id, timeout_ms) in &to_test {
        let verdict = match api.test(id, *timeout_ms).await {
            Ok(report) if report["success"] == true => Ok(format!(
                "ok ({} in {} ms)",
                report["statusCode"], report["latencyMs"]
            )),
            Ok(report) => Err(match report.get("statusCode") {
                Some(status) => format!(
                    "it answered {status}: {}",
                    report["responseBody"].as_str().unwrap_or_default()
                ),
                None => report["error"].as_str().unwrap_or("no answer").to_owned(),
            }),
            Err(e) => Err(format!("the test could not be run: {e:#}")),
        };
        match verdict {
            Ok(line) => println!("tested integration target {name:?}: {line}"),
            Err(line) => {
                failed += 1;
                println!("tested integration target {name:?}: FAILED: {line}");
            }
        }
    }
    let tests = match to_test.len() {
        0 => "no integration target to test".to_owned(),
        n => format!("{} of {n} target tests passed", n - failed),
    };
    println!("Apply complete: {created} created, {updated} updated, {deleted} deleted; {tests}.");
    Ok(if failed == 0 { 0 } else { 1 })
}

/// `export --format terraform-json`: the objects CXone holds (those the file names, when
/// one is given) as a Terraform JSON configuration, to `out` or standard output.
pub async fn export_command(
    file: Option<&Path>,
    state_path: &Path,
    out: Option<&PathBuf>,
) -> Result<u8> {
    let target = Target::find(state_path);
    target.require_documented("export")?;
    let setup: Option<Setup> = file
        .map(|f| super::load(f, &|n| target.variable(n)))
        .transpose()?;
    let (api, api_base) = target.connect().await?;
    let managed: Option<Vec<(Kind, String)>> = setup.map(|s| {
        s.objects()
            .into_iter()
            .map(|(kind, name, _)| (kind, name))
            .collect()
    });
    let mut objects = Vec::new();
    for (kind, items) in existing(&api).await? {
        for item in items {
            let name = item["name"].as_str().unwrap_or_default();
            let managed = managed
                .as_ref()
                .is_none_or(|m| m.iter().any(|(k, n)| *k == kind && n == name));
            if managed {
                objects.push((kind, item));
            }
        }
    }
    let document = super::terraform::export(&api_base, &objects);
    let text = serde_json::to_string_pretty(&document)? + "\n";
    match out {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} resource(s) to {}", objects.len(), path.display());
        }
        None => print!("{text}"),
    }
    Ok(0)
}
