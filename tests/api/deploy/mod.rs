//! Deployment checks: the SAM template against the code, and every function with every sample
//! event under the Lambda runtime emulator.

mod lambda_watch;
mod litellm_image;
mod llm_gateway;
mod permissions;
mod sam_local;
mod template;
