//! How request fields the domain parses look in the API description, so generated clients and
//! validators refuse what the server refuses: each type is a string schema with the rules its
//! domain type checks. Request types point at them with `#[schema(value_type = …)]`.

use utoipa::ToSchema;

/// A person's name (`DisplayName`): 1–64 characters, not only spaces, no control characters.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    max_length = 64,
    pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
)]
pub struct PersonName(#[allow(dead_code, reason = "a description only")] String);

/// An API key's name (`ApiKeyName`): 1–64 characters, not only spaces, no control characters.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    max_length = 64,
    pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
)]
pub struct KeyName(#[allow(dead_code, reason = "a description only")] String);

/// A conversation's title (`Title`): 1–100 characters, not only spaces, no control characters.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    max_length = 100,
    pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
)]
pub struct TitleText(#[allow(dead_code, reason = "a description only")] String);

/// Text that must not be blank: at least one character that is not a space.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"\S")]
pub struct NotBlank(#[allow(dead_code, reason = "a description only")] String);

/// Text handed on to the agent (`ChatContent`): not blank, no NUL character (PostgreSQL,
/// where Letta keeps it, cannot hold one).
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
pub struct AgentText(#[allow(dead_code, reason = "a description only")] String);
