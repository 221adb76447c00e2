//! Operator commands of the auth role that run without the service: key rotation and the first
//! admin account.

use anyhow::Context;

use crate::config::SutazaiConfig;

/// Rotates the signing key; running services pick it up on their next key reload.
pub(crate) async fn rotate_keys(config: &SutazaiConfig) -> anyhow::Result<String> {
    let master_key = config.security.master_key().context("security.master_key is required")?;
    sutazai_auth::migrate(&config.postgres).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(sutazai_kit::postgres::connect_options(&config.postgres, sutazai_auth::SCHEMA)?)
        .await?;
    let secret_box = sutazai_auth::domain::crypto_box::SecretBox::new(master_key.expose(), "signing-keys");
    let kid = sutazai_auth::keys::rotate_keys(&pool, &secret_box, config.auth.signing_algorithm).await?;
    pool.close().await;
    Ok(kid)
}

/// Creates an admin account, or gives an existing account the admin role. The password comes
/// from `SUTAZAI_ADMIN_PASSWORD` or, when unset, from the first line of standard input, so it never
/// appears in the process list or shell history.
pub(crate) async fn create_admin(
    config: &SutazaiConfig,
    username: String,
    email: String,
) -> anyhow::Result<()> {
    let password = match std::env::var("SUTAZAI_ADMIN_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let shutdown = sutazai_kit::shutdown::Shutdown::new();
    let mut auth_config = config.auth_config();
    auth_config.auth.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let application = sutazai_auth::Application::build(auth_config, &shutdown).await?;
    let user = application.service().create_admin(username, email, password).await?;
    println!("admin {} ({})", user.username, user.id);
    Ok(())
}
