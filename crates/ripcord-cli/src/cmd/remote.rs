//! Commands that talk to a running server through its API (`drill`,
//! `incident`): where it is, which token, and the calls.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

/// Which server, as whom.
#[derive(Args)]
pub struct Server {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "RIPCORD_SERVER",
        default_value = "http://127.0.0.1:7070"
    )]
    server: String,
    /// An API token.
    #[arg(long, global = true, env = "RIPCORD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the token, e.g. the server's `ripcord-data/admin.token`.
    #[arg(long, global = true, conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

pub struct Api {
    pub base: String,
    /// For requests [`Api::send`] does not make (bodies that are not JSON).
    pub token: String,
    pub http: reqwest::Client,
}

impl Api {
    /// A client of the server at `base` (e.g. `ripcord demo`'s own).
    pub fn on(base: String, token: String, http: reqwest::Client) -> Api {
        Api { base, token, http }
    }

    pub fn new(s: &Server) -> anyhow::Result<Api> {
        let token = match (&s.token, &s.token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?,
            (None, None) => bail!("no token: give --token, RIPCORD_TOKEN or --token-file"),
        };
        Ok(Api {
            base: s.server.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// Sends `req` with the token; the JSON answer, or the server's error
    /// message.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = req.bearer_auth(&self.token).send().await?;
        let status = response.status();
        let text = response.text().await?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = body["message"].as_str().map(str::to_string);
            bail!("{status}: {}", message.unwrap_or_else(|| body.to_string()));
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(req).await
    }
}
