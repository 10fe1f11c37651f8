//! The API server's own request counters (`apiserver_request_total`), read to prove what an
//! operator wrote.

use kube::Client;
use std::collections::BTreeMap;

/// Write requests (POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION) the API server has served,
/// by `"VERB resource"`. Leases are left out: the API server renews its own every ten seconds.
pub async fn write_requests(client: &Client) -> Result<BTreeMap<String, f64>, kube::Error> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    let text = client.request_text(request).await?;
    Ok(parse_write_requests(&text))
}

fn parse_write_requests(text: &str) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |name: &str| {
            line.split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let verb = label("verb");
        let resource = label("resource");
        let write = matches!(
            verb.as_str(),
            "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
        );
        if !write || resource == "leases" {
            continue;
        }
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *counts.entry(format!("{verb} {resource}")).or_insert(0.0) += value;
    }
    counts
}

/// What grew between two readings.
pub fn growth(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(key, value)| {
            let grown = value - before.get(key).copied().unwrap_or(0.0);
            (grown > 0.0).then(|| (key.clone(), grown))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_writes_by_verb_and_resource() {
        let text = r#"# HELP apiserver_request_total
apiserver_request_total{code="201",component="apiserver",resource="configmaps",verb="POST"} 3
apiserver_request_total{code="200",component="apiserver",resource="configmaps",verb="APPLY"} 2
apiserver_request_total{code="200",component="apiserver",resource="configmaps",verb="GET"} 9
apiserver_request_total{code="200",component="apiserver",resource="leases",verb="PUT"} 7
"#;
        let counts = parse_write_requests(text);
        assert_eq!(counts.get("POST configmaps"), Some(&3.0));
        assert_eq!(counts.get("APPLY configmaps"), Some(&2.0));
        assert_eq!(counts.len(), 2);
        let later = parse_write_requests(&text.replace("} 2", "} 5"));
        assert_eq!(
            growth(&counts, &later),
            BTreeMap::from([("APPLY configmaps".to_string(), 3.0)])
        );
    }
}
