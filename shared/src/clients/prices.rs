//! Model prices from LiteLLM's `/model/info`, cached: cost = tokens × price, which matches
//! LiteLLM's own spend exactly.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::Value;
use tokio::sync::RwLock;

use crate::clients::litellm::LiteLlm;

const TTL: Duration = Duration::from_secs(600);

/// A model's price per token, USD.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Per prompt token.
    pub input_per_token: f64,
    /// Per completion token.
    pub output_per_token: f64,
}

impl Price {
    /// The cost of a call with these token counts.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        prompt_tokens as f64 * self.input_per_token
            + completion_tokens as f64 * self.output_per_token
    }
}

/// Model prices, fetched from LiteLLM and cached for ten minutes.
#[derive(Default)]
pub struct PriceBook {
    cache: RwLock<Option<(Instant, HashMap<String, Price>)>>,
}

/// Reads `{"data": [{"model_name", "model_info": {input_cost_per_token, …}, "litellm_params": {…}}]}`.
pub fn parse_model_info(body: &Value) -> HashMap<String, Price> {
    let mut prices = HashMap::new();
    for entry in body
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = entry.get("model_name").and_then(Value::as_str) else {
            continue;
        };
        let pick = |field: &str| {
            entry
                .pointer(&format!("/model_info/{field}"))
                .and_then(Value::as_f64)
                .or_else(|| {
                    entry
                        .pointer(&format!("/litellm_params/{field}"))
                        .and_then(Value::as_f64)
                })
                .unwrap_or(0.0)
        };
        prices.insert(
            name.to_string(),
            Price {
                input_per_token: pick("input_cost_per_token"),
                output_per_token: pick("output_cost_per_token"),
            },
        );
    }
    prices
}

impl PriceBook {
    /// The model's price, fetched from LiteLLM at most every ten minutes; `None` when unknown
    /// or LiteLLM cannot be asked.
    pub async fn price(&self, litellm: &LiteLlm, model: &str) -> Option<Price> {
        if let Some((at, prices)) = self.cache.read().await.as_ref()
            && at.elapsed() < TTL
        {
            return prices.get(model).copied();
        }
        match litellm.model_info().await {
            Ok(body) => {
                let prices = parse_model_info(&body);
                let price = prices.get(model).copied();
                *self.cache.write().await = Some((Instant::now(), prices));
                price
            }
            Err(e) => {
                tracing::warn!(error = %e, "model prices unavailable; cost left unset");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prices_come_from_model_info_or_params() {
        let body = json!({"data": [
            {"model_name": "gpt-4", "model_info": {"input_cost_per_token": 3e-5, "output_cost_per_token": 6e-5}},
            {"model_name": "mini", "litellm_params": {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7}},
        ]});
        let prices = parse_model_info(&body);
        let p = prices["gpt-4"];
        assert!((p.cost(1000, 100) - 0.036).abs() < 1e-12);
        assert_eq!(prices["mini"].input_per_token, 1e-7);
    }
}
