// The SMTP listener's side of STARTTLS (RFC 3207): its certificate chain and
// key from `tls`, in a TLS 1.2+ server context. Built at start, by
// --check-config and on SIGHUP; a problem names the file and what is wrong
// with it (unreadable, not PEM, the key not the certificate's).
#pragma once

#include <memory>
#include <stdexcept>

#include <boost/asio/ssl/context.hpp>

#include "config/config.hpp"

namespace oauth_relay::relay {

class tls_config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws tls_config_error.
std::shared_ptr<boost::asio::ssl::context> make_server_tls(const config::tls_settings& tls);

}  // namespace oauth_relay::relay
