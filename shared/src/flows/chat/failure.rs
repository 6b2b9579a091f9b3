//! How a turn can fail once Letta is reached, read from Letta's `error_message` (whose
//! `detail` carries LiteLLM's refusal) or from the stream breaking off.

use super::events::TurnError;
use crate::app::error::ErrorCode;

/// How a failed LLM call was reported inside Letta's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnFailure {
    /// LiteLLM refused: the user's budget is used up.
    BudgetExceeded {
        /// What was spent, when LiteLLM said.
        spend: Option<f64>,
        /// The limit, when LiteLLM said.
        limit: Option<f64>,
    },
    /// LiteLLM does not know the user's key any more.
    KeyRevoked,
    /// Any other LLM failure.
    Llm {
        /// Letta's text (logged, never shown).
        detail: String,
    },
    /// Letta's stream broke off (Letta killed, connection lost).
    Interrupted {
        /// What broke (logged, never shown).
        detail: String,
    },
}

fn number_after(text: &str, marker: &str) -> Option<f64> {
    let start = text.find(marker)? + marker.len();
    let tail = &text[start..];
    let end = tail
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .unwrap_or(tail.len());
    tail[..end].parse().ok()
}

impl TurnFailure {
    /// Reads LiteLLM's refusal out of the texts of Letta's `error_message`.
    pub fn classify(texts: &[Option<&str>]) -> Self {
        let detail = texts
            .iter()
            .flatten()
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        if detail.contains("budget_exceeded")
            || detail.contains("ExceededBudget")
            || detail.contains("Budget has been exceeded")
        {
            let spend =
                number_after(&detail, "Spend=").or_else(|| number_after(&detail, "Current cost: "));
            let limit =
                number_after(&detail, "Budget=").or_else(|| number_after(&detail, "Max budget: "));
            Self::BudgetExceeded { spend, limit }
        } else if detail.contains("token_not_found_in_db") {
            Self::KeyRevoked
        } else {
            Self::Llm { detail }
        }
    }

    /// The stable code of the `error` event and of the stored message's error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BudgetExceeded { .. } => ErrorCode::BudgetExceeded,
            Self::KeyRevoked => ErrorCode::BillingKeyRevoked,
            Self::Llm { .. } => ErrorCode::LlmError,
            Self::Interrupted { .. } => ErrorCode::AgentInterrupted,
        }
    }

    /// A sentence for the user.
    pub fn message(&self) -> String {
        match self {
            Self::BudgetExceeded { .. } => "your budget for this period is used up".into(),
            Self::KeyRevoked => {
                "your billing key is no longer valid; sign in again or contact support".into()
            }
            Self::Llm { .. } => "the model could not answer; try again".into(),
            Self::Interrupted { .. } => {
                "the reply broke off; what arrived is kept, try again".into()
            }
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, Self::Llm { .. } | Self::Interrupted { .. })
    }

    /// The `error` event.
    pub fn event(&self) -> TurnError {
        TurnError {
            code: self.code(),
            message: self.message(),
            retryable: self.retryable(),
            budget: match self {
                Self::BudgetExceeded { spend, limit } => Some((*spend, *limit)),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refusals_are_recognised_with_their_figures() {
        let letta = TurnFailure::classify(&[
            Some("An error occurred with the LLM request."),
            Some(
                "INVALID_ARGUMENT: Invalid request content for OpenAI: Error code: 422 - {'error': {'message': 'ExceededBudget: User=dave over budget. Spend=0.05322, Budget=1e-07', 'type': 'budget_exceeded', 'param': None, 'code': '422'}} [BYOK]",
            ),
        ]);
        assert_eq!(
            letta,
            TurnFailure::BudgetExceeded {
                spend: Some(0.05322),
                limit: Some(1e-7)
            }
        );
        let reserved = TurnFailure::classify(&[Some(
            "Budget has been exceeded! User=carol Current cost: 1.36437, Max budget: 1.0",
        )]);
        assert_eq!(
            reserved,
            TurnFailure::BudgetExceeded {
                spend: Some(1.36437),
                limit: Some(1.0)
            }
        );
        let revoked = TurnFailure::classify(&[
            None,
            Some("UNAUTHENTICATED: ... 'type': 'token_not_found_in_db' ..."),
        ]);
        assert_eq!(revoked, TurnFailure::KeyRevoked);
        assert!(matches!(
            TurnFailure::classify(&[Some("Connection error.")]),
            TurnFailure::Llm { .. }
        ));
    }
}
