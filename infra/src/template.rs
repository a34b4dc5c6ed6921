//! Reads `template.yaml`: the functions, their HTTP routes and SQS event sources, and the
//! resources the local stack creates. The template is the one source of truth for routes.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use serde_norway::Value;

/// A value in the template that may refer to another resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateValue {
    Literal(String),
    /// `!Ref LogicalId`
    Ref(String),
    /// `!GetAtt LogicalId.Attribute`
    GetAtt(String, String),
    /// `!If [Condition, then, else]`; a branch that is `!Ref AWS::NoValue` leaves the
    /// property out.
    If(String, Box<TemplateValue>, Box<TemplateValue>),
}

/// What `!Ref AWS::NoValue` names.
pub const NO_VALUE: &str = "AWS::NoValue";

#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The binary's name, from `Metadata.BuildProperties.Binary`; also the function's name.
    pub name: String,
    pub timeout_secs: u64,
    pub memory_mb: u64,
    pub environment: Vec<(String, TemplateValue)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
}

impl Route {
    /// API Gateway's route key, such as `POST /signals/{name}`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Matches a request, returning the path parameters when it does. `{name}` takes one
    /// segment; `{name+}` takes the rest of the path.
    pub fn matches(&self, method: &str, path: &str) -> Option<Vec<(String, String)>> {
        if self.method != "ANY" && !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        let mut params = Vec::new();
        let pattern: Vec<&str> = self.path.trim_start_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for (i, part) in pattern.iter().enumerate() {
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
                let rest = actual.get(i..)?.join("/");
                if rest.is_empty() {
                    return None;
                }
                params.push((name.to_owned(), rest));
                return Some(params);
            }
            let seg = actual.get(i)?;
            if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if seg.is_empty() {
                    return None;
                }
                params.push((name.to_owned(), (*seg).to_owned()));
            } else if part != seg {
                return None;
            }
        }
        (pattern.len() == actual.len()).then_some(params)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMapping {
    pub function: String,
    pub queue: String,
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
}

/// A DynamoDB stream event source: the function gets the table's stream records in
/// batches, filtered as the mapping's `FilterCriteria` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMapping {
    pub function: String,
    /// The table's logical id.
    pub table: String,
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
    pub filter: StreamFilter,
}

/// The filter patterns the local stack applies: records whose `eventName` is one of
/// `event_names` and whose new image has every attribute in `new_image_has`. Empty lists
/// let everything through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamFilter {
    pub event_names: Vec<String>,
    pub new_image_has: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub logical_id: String,
    pub visibility_timeout: Option<i64>,
    pub retention: Option<i64>,
    /// `MaximumMessageSize`: the emulator's default is larger than SQS's, so it is set.
    pub max_message_size: Option<i64>,
    /// Dead-letter target (logical id) and maxReceiveCount.
    pub redrive: Option<(String, i64)>,
}

impl QueueSpec {
    /// The short local name (`JobsQueue` → `jobs`), used in queue names and the state file.
    pub fn local_name(&self) -> String {
        self.logical_id
            .strip_suffix("Queue")
            .unwrap_or(&self.logical_id)
            .to_ascii_lowercase()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    pub hash_key: String,
    pub ttl_attribute: Option<String>,
    /// `GlobalSecondaryIndexes`, with their keys' types from `AttributeDefinitions`.
    pub indexes: Vec<IndexSpec>,
    /// `StreamSpecification.StreamViewType`, when the table has a stream.
    pub stream_view_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: String,
    /// (attribute, `S`/`N`/`B`)
    pub hash: (String, String),
    pub range: Option<(String, String)>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection: String,
}

/// An EventBridge rule on a schedule whose target is a queue, with a constant input: what
/// the local stack runs itself, since the emulator keeps no schedules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSpec {
    pub logical_id: String,
    pub every: std::time::Duration,
    /// The target queue's logical id.
    pub queue: String,
    pub input: String,
}

#[derive(Debug, Clone)]
pub struct Template {
    /// Parameters and their defaults.
    pub parameters: std::collections::BTreeMap<String, Option<String>>,
    /// Conditions the local stack can evaluate, `!Not [!Equals [!Ref P, ""]]`: each
    /// condition's name, and the parameter that must be set for it to hold.
    pub conditions: std::collections::BTreeMap<String, String>,
    pub functions: Vec<FunctionSpec>,
    pub routes: Vec<Route>,
    pub sqs_mappings: Vec<SqsMapping>,
    pub stream_mappings: Vec<StreamMapping>,
    pub queues: Vec<QueueSpec>,
    pub tables: Vec<TableSpec>,
    pub schedules: Vec<ScheduleSpec>,
    pub secrets: Vec<String>,
}

impl Template {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the SAM template {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let doc: Value = serde_norway::from_str(text).context("not valid YAML")?;
        let globals = doc.get("Globals").and_then(|g| g.get("Function"));
        let resources = doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .ok_or_else(|| anyhow!("the template has no Resources"))?;

        let parameters = doc
            .get("Parameters")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                let default = v.get("Default").and_then(|d| match d {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                });
                Some((k.as_str()?.to_owned(), default))
            })
            .collect();
        let conditions = doc
            .get("Conditions")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), parameter_set(v)?)))
            .collect();
        let mut template = Template {
            parameters,
            conditions,
            functions: Vec::new(),
            routes: Vec::new(),
            sqs_mappings: Vec::new(),
            stream_mappings: Vec::new(),
            queues: Vec::new(),
            tables: Vec::new(),
            schedules: Vec::new(),
            secrets: Vec::new(),
        };
        for (id, resource) in resources {
            let id = id
                .as_str()
                .ok_or_else(|| anyhow!("a resource id is not a string"))?
                .to_owned();
            let kind = resource
                .get("Type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let props = resource.get("Properties");
            match kind {
                "AWS::Serverless::Function" => template
                    .add_function(&id, resource, globals)
                    .with_context(|| format!("function {id}"))?,
                "AWS::SQS::Queue" => template.queues.push(queue(&id, props)?),
                "AWS::DynamoDB::Table" => template.tables.push(table(&id, props)?),
                "AWS::SecretsManager::Secret" => template.secrets.push(id),
                "AWS::Events::Rule" => {
                    if let Some(schedule) = schedule(&id, props)? {
                        template.schedules.push(schedule);
                    }
                }
                _ => {}
            }
        }
        Ok(template)
    }

    fn add_function(&mut self, id: &str, resource: &Value, globals: Option<&Value>) -> Result<()> {
        let props = resource.get("Properties");
        let name = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("Metadata.BuildProperties.Binary is missing"))?
            .to_owned();
        let setting = |key: &str| {
            props
                .and_then(|p| p.get(key))
                .or_else(|| globals.and_then(|g| g.get(key)))
                .and_then(Value::as_u64)
        };
        let mut environment = Vec::new();
        for source in [globals, props] {
            let vars = source
                .and_then(|s| s.get("Environment"))
                .and_then(|e| e.get("Variables"))
                .and_then(Value::as_mapping);
            for (k, v) in vars.into_iter().flatten() {
                let k = k
                    .as_str()
                    .ok_or_else(|| anyhow!("an environment name is not a string"))?;
                environment.retain(|(name, _): &(String, TemplateValue)| name != k);
                environment.push((k.to_owned(), value(v)?));
            }
        }
        let events = props
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping);
        for (event_id, event) in events.into_iter().flatten() {
            let event_props = event.get("Properties");
            let get = |key: &str| event_props.and_then(|p| p.get(key));
            match event.get("Type").and_then(Value::as_str) {
                Some("HttpApi") => {
                    let method = get("Method").and_then(Value::as_str).unwrap_or("ANY");
                    let path = get("Path")
                        .and_then(Value::as_str)
                        .ok_or_else(|| anyhow!("HttpApi event {event_id:?} has no Path"))?;
                    self.routes.push(Route {
                        method: method.to_ascii_uppercase(),
                        path: path.to_owned(),
                        function: name.clone(),
                    });
                }
                Some("SQS") => {
                    let queue = match get("Queue").map(value).transpose()? {
                        Some(TemplateValue::GetAtt(queue, attr)) if attr == "Arn" => queue,
                        other => bail!(
                            "SQS event {event_id:?} must name its queue with !GetAtt X.Arn, not {other:?}"
                        ),
                    };
                    self.sqs_mappings.push(SqsMapping {
                        function: name.clone(),
                        queue,
                        batch_size: get("BatchSize").and_then(Value::as_i64).unwrap_or(10) as i32,
                        report_batch_item_failures: reports_item_failures(get(
                            "FunctionResponseTypes",
                        ))
                        .with_context(|| format!("SQS event {event_id:?}"))?,
                    });
                }
                Some("DynamoDB") => {
                    let table = match get("Stream").map(value).transpose()? {
                        Some(TemplateValue::GetAtt(table, attr)) if attr == "StreamArn" => table,
                        other => bail!(
                            "DynamoDB event {event_id:?} must name its stream with !GetAtt X.StreamArn, not {other:?}"
                        ),
                    };
                    self.stream_mappings.push(StreamMapping {
                        function: name.clone(),
                        table,
                        batch_size: get("BatchSize").and_then(Value::as_i64).unwrap_or(100) as i32,
                        report_batch_item_failures: reports_item_failures(get(
                            "FunctionResponseTypes",
                        ))
                        .with_context(|| format!("DynamoDB event {event_id:?}"))?,
                        filter: stream_filter(get("FilterCriteria"))
                            .with_context(|| format!("DynamoDB event {event_id:?}"))?,
                    });
                }
                other => {
                    bail!("event {event_id:?} has a type the local stack does not serve: {other:?}")
                }
            }
        }
        self.functions.push(FunctionSpec {
            logical_id: id.to_owned(),
            name,
            timeout_secs: setting("Timeout").unwrap_or(3),
            memory_mb: setting("MemorySize").unwrap_or(128),
            environment,
        });
        Ok(())
    }

    /// The function serving `method path`, with its route and path parameters.
    pub fn route(&self, method: &str, path: &str) -> Option<(&Route, Vec<(String, String)>)> {
        self.routes
            .iter()
            .find_map(|r| r.matches(method, path).map(|p| (r, p)))
    }

    /// The runtime named in `Globals.Function` or on each function, for checks.
    pub fn runtimes(text: &str) -> Result<Vec<String>> {
        let doc: Value = serde_norway::from_str(text)?;
        let mut found = Vec::new();
        if let Some(r) = doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Runtime"))
            .and_then(Value::as_str)
        {
            found.push(r.to_owned());
        }
        for (_, resource) in doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            if let Some(r) = resource
                .get("Properties")
                .and_then(|p| p.get("Runtime"))
                .and_then(Value::as_str)
            {
                found.push(r.to_owned());
            }
        }
        Ok(found)
    }
}

/// The parameter of a condition `!Not [!Equals [!Ref P, ""]]` ("P is set").
fn parameter_set(v: &Value) -> Option<String> {
    let Value::Tagged(not) = v else { return None };
    let Value::Tagged(equals) = not.value.as_sequence()?.first()? else {
        return None;
    };
    let [Value::Tagged(reference), empty] = equals.value.as_sequence()?.as_slice() else {
        return None;
    };
    let shaped = not.tag == "Not" && equals.tag == "Equals" && reference.tag == "Ref";
    (shaped && empty.as_str() == Some(""))
        .then(|| reference.value.as_str().map(str::to_owned))
        .flatten()
}

fn value(v: &Value) -> Result<TemplateValue> {
    match v {
        Value::Tagged(tagged) if tagged.tag == "If" => {
            let Some([Value::String(condition), then, otherwise]) =
                tagged.value.as_sequence().map(Vec::as_slice)
            else {
                bail!("!If needs [Condition, then, else]")
            };
            Ok(TemplateValue::If(
                condition.clone(),
                Box::new(value(then)?),
                Box::new(value(otherwise)?),
            ))
        }
        Value::String(s) => Ok(TemplateValue::Literal(s.clone())),
        Value::Number(n) => Ok(TemplateValue::Literal(n.to_string())),
        Value::Bool(b) => Ok(TemplateValue::Literal(b.to_string())),
        Value::Tagged(tagged) => {
            let inner = tagged.value.as_str().unwrap_or_default();
            if tagged.tag == "Ref" {
                Ok(TemplateValue::Ref(inner.to_owned()))
            } else if tagged.tag == "GetAtt" {
                let (id, attr) = inner
                    .split_once('.')
                    .ok_or_else(|| anyhow!("!GetAtt {inner} has no attribute"))?;
                Ok(TemplateValue::GetAtt(id.to_owned(), attr.to_owned()))
            } else {
                bail!("the local stack cannot resolve {} {inner}", tagged.tag)
            }
        }
        Value::Mapping(m) if m.len() == 1 => {
            if let Some(r) = m.get("Ref").and_then(Value::as_str) {
                return Ok(TemplateValue::Ref(r.to_owned()));
            }
            bail!("the local stack cannot resolve {v:?}")
        }
        other => bail!("the local stack cannot resolve {other:?}"),
    }
}

fn queue(id: &str, props: Option<&Value>) -> Result<QueueSpec> {
    let get = |key: &str| props.and_then(|p| p.get(key));
    let redrive = match get("RedrivePolicy") {
        None => None,
        Some(policy) => {
            let target = match policy.get("deadLetterTargetArn").map(value).transpose()? {
                Some(TemplateValue::GetAtt(q, attr)) if attr == "Arn" => q,
                other => {
                    bail!("queue {id}: deadLetterTargetArn must be !GetAtt X.Arn, not {other:?}")
                }
            };
            let count = policy
                .get("maxReceiveCount")
                .and_then(Value::as_i64)
                .ok_or_else(|| anyhow!("queue {id}: RedrivePolicy has no maxReceiveCount"))?;
            Some((target, count))
        }
    };
    Ok(QueueSpec {
        logical_id: id.to_owned(),
        visibility_timeout: get("VisibilityTimeout").and_then(Value::as_i64),
        retention: get("MessageRetentionPeriod").and_then(Value::as_i64),
        max_message_size: get("MaximumMessageSize").and_then(Value::as_i64),
        redrive,
    })
}

fn table(id: &str, props: Option<&Value>) -> Result<TableSpec> {
    let props = props.ok_or_else(|| anyhow!("table {id} has no Properties"))?;
    let hash_key = props
        .get("KeySchema")
        .and_then(Value::as_sequence)
        .and_then(|keys| {
            keys.iter()
                .find(|k| k.get("KeyType").and_then(Value::as_str) == Some("HASH"))
        })
        .and_then(|k| k.get("AttributeName"))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("table {id} has no HASH key"))?;
    let ttl = props.get("TimeToLiveSpecification");
    let ttl_attribute = ttl
        .filter(|t| t.get("Enabled").and_then(Value::as_bool) == Some(true))
        .and_then(|t| t.get("AttributeName"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let types: std::collections::HashMap<&str, &str> = props
        .get("AttributeDefinitions")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some((
                d.get("AttributeName")?.as_str()?,
                d.get("AttributeType")?.as_str()?,
            ))
        })
        .collect();
    let key = |keys: &Value, kind: &str| -> Result<Option<(String, String)>> {
        let Some(name) = keys
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|k| k.get("KeyType").and_then(Value::as_str) == Some(kind))
            .and_then(|k| k.get("AttributeName"))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let kind = types
            .get(name)
            .ok_or_else(|| anyhow!("table {id}: {name} has no AttributeDefinitions entry"))?;
        Ok(Some((name.to_owned(), (*kind).to_owned())))
    };
    let mut indexes = Vec::new();
    for index in props
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = index
            .get("IndexName")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("table {id}: an index has no IndexName"))?;
        let keys = index
            .get("KeySchema")
            .ok_or_else(|| anyhow!("table {id}: index {name} has no KeySchema"))?;
        indexes.push(IndexSpec {
            name: name.to_owned(),
            hash: key(keys, "HASH")?
                .ok_or_else(|| anyhow!("table {id}: index {name} has no HASH key"))?,
            range: key(keys, "RANGE")?,
            projection: index
                .get("Projection")
                .and_then(|p| p.get("ProjectionType"))
                .and_then(Value::as_str)
                .unwrap_or("ALL")
                .to_owned(),
        });
    }
    Ok(TableSpec {
        logical_id: id.to_owned(),
        hash_key: hash_key.to_owned(),
        ttl_attribute,
        indexes,
        stream_view_type: props
            .get("StreamSpecification")
            .and_then(|s| s.get("StreamViewType"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// Whether an event source's `FunctionResponseTypes` asks for partial batch responses; any
/// other type is refused (linters accept a misspelt one).
fn reports_item_failures(types: Option<&Value>) -> Result<bool> {
    let types: Vec<&str> = types
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(unknown) = types.iter().find(|t| **t != "ReportBatchItemFailures") {
        bail!("unknown FunctionResponseType {unknown:?}");
    }
    Ok(!types.is_empty())
}

/// The one filter shape the local stack applies (see [`StreamFilter`]); any other pattern
/// is refused, rather than served unfiltered.
fn stream_filter(criteria: Option<&Value>) -> Result<StreamFilter> {
    let mut filter = StreamFilter::default();
    let patterns = criteria
        .and_then(|c| c.get("Filters"))
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten();
    for (i, f) in patterns.enumerate() {
        if i > 0 {
            bail!("the local stack applies one filter pattern, not several");
        }
        let text = f
            .get("Pattern")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("a filter has no Pattern string"))?;
        let pattern: serde_json::Value =
            serde_json::from_str(text).with_context(|| format!("pattern {text:?}"))?;
        let refuse = || anyhow!("the local stack cannot apply the pattern {text}");
        for (key, wanted) in pattern.as_object().ok_or_else(refuse)? {
            match key.as_str() {
                "eventName" => {
                    for name in wanted.as_array().ok_or_else(refuse)? {
                        filter
                            .event_names
                            .push(name.as_str().ok_or_else(refuse)?.to_owned());
                    }
                }
                "dynamodb" => {
                    let image = wanted
                        .as_object()
                        .filter(|o| o.len() == 1)
                        .and_then(|o| o.get("NewImage"))
                        .and_then(serde_json::Value::as_object)
                        .ok_or_else(refuse)?;
                    for (attribute, test) in image {
                        let exists = test
                            .as_object()
                            .and_then(|t| t.values().next())
                            .and_then(serde_json::Value::as_array)
                            .is_some_and(|a| {
                                a.len() == 1 && a[0] == serde_json::json!({"exists": true})
                            });
                        if !exists {
                            return Err(refuse());
                        }
                        filter.new_image_has.push(attribute.clone());
                    }
                }
                _ => return Err(refuse()),
            }
        }
    }
    Ok(filter)
}

/// `rate(N unit)`, as EventBridge writes a fixed schedule.
fn rate(expression: &str) -> Result<std::time::Duration> {
    let inner = expression
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| anyhow!("{expression:?} is not rate(N unit)"))?;
    let (count, unit) = inner
        .split_once(' ')
        .ok_or_else(|| anyhow!("{expression:?} is not rate(N unit)"))?;
    let count: u64 = count
        .parse()
        .map_err(|_| anyhow!("{expression:?}: {count:?} is not a whole number"))?;
    let seconds = match unit.trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        other => bail!("{expression:?}: unknown unit {other:?}"),
    };
    Ok(std::time::Duration::from_secs(count * seconds))
}

/// A scheduled rule whose target is a queue; `None` for a rule of another kind.
fn schedule(id: &str, props: Option<&Value>) -> Result<Option<ScheduleSpec>> {
    let Some(expression) = props
        .and_then(|p| p.get("ScheduleExpression"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let target = props
        .and_then(|p| p.get("Targets"))
        .and_then(Value::as_sequence)
        .and_then(|t| t.first())
        .ok_or_else(|| anyhow!("rule {id} has no Targets"))?;
    let queue = match target.get("Arn").map(value).transpose()? {
        Some(TemplateValue::GetAtt(queue, attr)) if attr == "Arn" => queue,
        other => bail!("rule {id}: the target must be !GetAtt X.Arn of a queue, not {other:?}"),
    };
    let input = target
        .get("Input")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("rule {id}: the target has no Input"))?;
    Ok(Some(ScheduleSpec {
        logical_id: id.to_owned(),
        every: rate(expression).with_context(|| format!("rule {id}"))?,
        queue,
        input: input.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_template() -> (String, Template) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let template = Template::parse(&text).unwrap();
        (text, template)
    }

    #[test]
    fn an_optional_setting_is_passed_only_when_its_parameter_is_set() {
        let (_, t) = project_template();
        assert_eq!(t.conditions["HasCxoneTokenUrl"], "CxoneTokenUrl");
        for f in &t.functions {
            for (key, value) in &f.environment {
                if let TemplateValue::If(condition, then, otherwise) = value {
                    let parameter = &t.conditions[condition];
                    assert_eq!(**then, TemplateValue::Ref(parameter.clone()), "{key}");
                    assert_eq!(**otherwise, TemplateValue::Ref(NO_VALUE.into()), "{key}");
                }
            }
            let token_url = f
                .environment
                .iter()
                .find(|(k, _)| k == "CXBRIDGE_CXONE_TOKEN_URL")
                .map(|(_, v)| v);
            assert!(
                matches!(token_url, Some(TemplateValue::If(c, ..)) if c == "HasCxoneTokenUrl"),
                "{}: {token_url:?}",
                f.name
            );
        }
    }

    #[test]
    fn the_sweep_schedule_and_the_due_and_log_indexes_are_read_from_the_template() {
        let (_, t) = project_template();
        let [sweep] = t.schedules.as_slice() else {
            panic!("one schedule: {:?}", t.schedules);
        };
        assert_eq!(sweep.queue, "JobsQueue");
        assert_eq!(sweep.every, std::time::Duration::from_secs(60));
        let job: serde_json::Value = serde_json::from_str(&sweep.input).unwrap();
        assert_eq!(job["kind"], "sweep");
        assert_eq!(
            t.tables[0].indexes,
            [
                IndexSpec {
                    name: "due".into(),
                    hash: ("dueShard".into(), "S".into()),
                    range: Some(("dueAt".into(), "N".into())),
                    projection: "KEYS_ONLY".into(),
                },
                IndexSpec {
                    name: "log".into(),
                    hash: ("logKey".into(), "S".into()),
                    range: Some(("logAt".into(), "S".into())),
                    projection: "ALL".into(),
                }
            ]
        );
        assert!(rate("rate(5 minutes)").is_ok_and(|d| d.as_secs() == 300));
        assert!(rate("cron(0 * * * ? *)").is_err());
    }

    #[test]
    fn the_template_declares_the_six_functions_and_their_routes() {
        let (_, t) = project_template();
        let mut names: Vec<_> = t.functions.iter().map(|f| f.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "callback-verifier",
                "event-relay",
                "intent-router",
                "retry-drainer",
                "signal-dispatcher",
                "webhook-receiver"
            ]
        );
        let mut keys: Vec<_> = t
            .routes
            .iter()
            .map(|r| (r.key(), r.function.clone()))
            .collect();
        keys.sort();
        let expected = [
            ("GET /executions/{correlationId}", "signal-dispatcher"),
            ("POST /callbacks/studio", "callback-verifier"),
            ("POST /cognigy/intents", "intent-router"),
            ("POST /signals/{name}", "signal-dispatcher"),
            ("POST /webhooks/cxone", "webhook-receiver"),
            ("POST /webhooks/studio", "webhook-receiver"),
        ];
        assert_eq!(
            keys,
            expected.map(|(k, f)| (k.to_owned(), f.to_owned())).to_vec()
        );
    }

    #[test]
    fn the_drainer_reads_jobs_in_batches_and_reports_item_failures() {
        let (text, t) = project_template();
        assert_eq!(
            t.sqs_mappings,
            [SqsMapping {
                function: "retry-drainer".into(),
                queue: "JobsQueue".into(),
                batch_size: 10,
                report_batch_item_failures: true,
            }]
        );
        // Linters accept a misspelt response type, so check the literal spelling too.
        assert!(text.contains("- ReportBatchItemFailures"));
    }

    #[test]
    fn the_relay_reads_the_table_s_stream_of_delivery_records_and_reports_item_failures() {
        let (_, t) = project_template();
        assert_eq!(t.tables[0].stream_view_type.as_deref(), Some("NEW_IMAGE"));
        assert_eq!(
            t.stream_mappings,
            [StreamMapping {
                function: "event-relay".into(),
                table: "Table".into(),
                batch_size: 100,
                report_batch_item_failures: true,
                filter: StreamFilter {
                    event_names: vec!["INSERT".into(), "MODIFY".into()],
                    new_image_has: vec!["outbox".into()],
                },
            }]
        );
    }

    #[test]
    fn a_stream_filter_the_local_stack_cannot_apply_is_refused() {
        let criteria = |pattern: &str| -> Value {
            serde_norway::from_str(&format!("Filters:\n  - Pattern: '{pattern}'\n")).unwrap()
        };
        for pattern in [
            r#"{"eventName": "INSERT"}"#,
            r#"{"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "d"}]}}}}"#,
            r#"{"dynamodb": {"NewImage": {"outbox": {"S": [{"exists": false}]}}}}"#,
            r#"{"eventSource": ["aws:dynamodb"]}"#,
        ] {
            assert!(
                stream_filter(Some(&criteria(pattern))).is_err(),
                "{pattern}"
            );
        }
        assert_eq!(stream_filter(None).unwrap(), StreamFilter::default());
    }

    #[test]
    fn every_function_runs_on_a_supported_custom_runtime() {
        let (text, _) = project_template();
        let runtimes = Template::runtimes(&text).unwrap();
        assert!(!runtimes.is_empty());
        for r in runtimes {
            assert!(
                ["provided.al2023", "provided.al2"].contains(&r.as_str()),
                "{r}"
            );
        }
    }

    #[test]
    fn jobs_redrive_to_the_dlq_and_the_table_expires_on_expires_at() {
        let (_, t) = project_template();
        let jobs = t
            .queues
            .iter()
            .find(|q| q.logical_id == "JobsQueue")
            .unwrap();
        assert_eq!(jobs.local_name(), "jobs");
        let (dlq, count) = jobs.redrive.clone().unwrap();
        assert_eq!(dlq, "DlqQueue");
        assert!(count > 1);
        let mut names: Vec<_> = t.queues.iter().map(QueueSpec::local_name).collect();
        names.sort();
        assert_eq!(names, ["dlq", "events", "jobs"]);
        assert_eq!(t.tables.len(), 1);
        assert_eq!(t.tables[0].hash_key, "pk");
        assert_eq!(t.tables[0].ttl_attribute.as_deref(), Some("expiresAt"));
        assert_eq!(t.secrets, ["Secret"]);
    }

    #[test]
    fn every_function_gets_every_configuration_variable() {
        let (_, t) = project_template();
        for f in &t.functions {
            for var in cxbridge::config::vars::ALL {
                assert!(
                    f.environment.iter().any(|(k, _)| k == var),
                    "{} lacks {var}",
                    f.name
                );
            }
            assert!(
                !f.environment
                    .iter()
                    .any(|(k, _)| k == cxbridge::config::vars::PROBE),
                "local diagnostics must never be deployed"
            );
        }
    }

    #[test]
    fn the_deployment_settings_the_linters_do_not_check_hold() {
        let (text, t) = project_template();
        let doc: Value = serde_norway::from_str(&text).unwrap();
        let drainer = &doc["Resources"]["RetryDrainerFunction"]["Properties"];
        let jobs = &drainer["Events"]["Jobs"]["Properties"];
        assert!(jobs["MaximumBatchingWindowInSeconds"].as_u64().is_some());
        assert!(
            jobs["ScalingConfig"]["MaximumConcurrency"]
                .as_u64()
                .is_some_and(|c| c >= 2)
        );
        let drainer_timeout = drainer["Timeout"].as_u64().unwrap();
        let visibility = t
            .queues
            .iter()
            .find(|q| q.logical_id == "JobsQueue")
            .unwrap()
            .visibility_timeout
            .unwrap();
        assert!(
            visibility >= 6 * drainer_timeout as i64,
            "visibility {visibility} < 6 x {drainer_timeout}"
        );
        let table = &doc["Resources"]["Table"]["Properties"];
        assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
        assert_eq!(
            table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            true
        );
        assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
        let secret = &doc["Resources"]["Secret"]["Properties"];
        assert!(
            secret.get("SecretString").is_none(),
            "no secret in plain text"
        );
        assert!(
            !text.contains("Action: '*'")
                && !text.contains("Action: \"*\"")
                && !text.contains(":*\""),
            "no wildcard actions"
        );
        for name in ["ApiUrl", "JobsQueueUrl", "DlqUrl", "EventsQueueUrl"] {
            assert!(doc["Outputs"].get(name).is_some(), "output {name}");
        }
        for name in [
            "CxoneProfile",
            "CxoneIssuer",
            "CxoneTenant",
            "WebhookConfig",
            "SignalsConfig",
            "AlarmTopicArn",
        ] {
            assert!(t.parameters.contains_key(name), "parameter {name}");
        }
        for alarm in [
            "DlqNotEmptyAlarm",
            "Api5xxAlarm",
            "ThrottlesAlarm",
            "DrainerErrorsAlarm",
        ] {
            assert_eq!(
                doc["Resources"][alarm]["Type"], "AWS::CloudWatch::Alarm",
                "{alarm}"
            );
        }
        assert_eq!(
            doc["Resources"]["Dashboard"]["Type"],
            "AWS::CloudWatch::Dashboard"
        );
    }

    #[test]
    fn routes_match_segments_and_capture_parameters() {
        let route = Route {
            method: "POST".into(),
            path: "/signals/{name}".into(),
            function: "f".into(),
        };
        assert_eq!(
            route.matches("POST", "/signals/order-update"),
            Some(vec![("name".into(), "order-update".into())])
        );
        assert_eq!(route.matches("GET", "/signals/x"), None);
        assert_eq!(route.matches("POST", "/signals"), None);
        assert_eq!(route.matches("POST", "/signals/"), None);
        assert_eq!(route.matches("POST", "/signals/a/b"), None);
        let greedy = Route {
            method: "ANY".into(),
            path: "/files/{proxy+}".into(),
            function: "f".into(),
        };
        assert_eq!(
            greedy.matches("DELETE", "/files/a/b"),
            Some(vec![("proxy".into(), "a/b".into())])
        );
    }

    #[test]
    fn an_unknown_response_type_is_refused() {
        let text = r#"
Resources:
  F:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: f}}
    Properties:
      Events:
        Q:
          Type: SQS
          Properties:
            Queue: !GetAtt Q.Arn
            FunctionResponseTypes: [ReportBatchItemFailure]
"#;
        let err = format!("{:#}", Template::parse(text).unwrap_err());
        assert!(err.contains("ReportBatchItemFailure"), "{err}");
    }
}
