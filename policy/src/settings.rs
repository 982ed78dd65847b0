//! The `validate_settings` entry point. The settings type itself lives in `oras-cache-api`, so
//! the chart and the tests can build and check the same settings.

use kubewarden_policy_sdk::settings::SettingsValidationResponse;
use kubewarden_policy_sdk::wapc_guest::CallResult;
pub use oras_cache_api::settings::Settings;

/// Checks settings JSON. A settings object that does not even parse (an unknown field, a wrong
/// type) is reported as invalid with serde's message, rather than as a guest error, so the operator
/// sees which setting is wrong.
pub fn check(payload: &[u8]) -> SettingsValidationResponse {
    let result = serde_json::from_slice::<Settings>(payload)
        .map_err(|e| format!("settings do not parse: {e}"))
        .and_then(|settings| settings.validate());
    match result {
        Ok(()) => SettingsValidationResponse {
            valid: true,
            message: None,
        },
        Err(message) => SettingsValidationResponse {
            valid: false,
            message: Some(message),
        },
    }
}

/// waPC `validate_settings`.
pub fn validate_settings(payload: &[u8]) -> CallResult {
    Ok(serde_json::to_vec(&check(payload))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_settings_are_valid() {
        let response = check(b"{}");
        assert!(response.valid, "{:?}", response.message);
    }

    #[test]
    fn unknown_and_malformed_settings_are_invalid_with_a_message() {
        let response = check(br#"{"agentImages": "x"}"#);
        assert!(!response.valid);
        assert!(response.message.unwrap().contains("agentImages"));
        let response = check(br#"{"agentImagePullPolicy": "Sometimes"}"#);
        assert!(!response.valid);
        assert!(response.message.unwrap().contains("agentImagePullPolicy"));
        let response = check(br#"{"contextAware": "yes"}"#);
        assert!(!response.valid);
    }
}
