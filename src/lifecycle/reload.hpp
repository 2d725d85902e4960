// Reload: the config file read again, validated, and put in force without dropping a client.
#pragma once

#include <string>

#include "pgmux/config/config.hpp"
#include "session/proxy.hpp"

namespace pgmux::lifecycle {

// Keys a running process cannot change (listeners, worker threads): their paths, where `next` differs.
std::vector<std::string> keys_needing_restart(const config::Config& running, const config::Config& next);

// Loads `path`; if it is valid, puts it in force in `proxy` (and the log settings) and returns "". Otherwise
// returns why (the key's path first) and changes nothing. The caller drains the retired pools' clients.
// TLS material read from the config is reloaded here too, so that SIGHUP and RELOAD renew certificates.
std::string reload_config(session::Proxy& proxy, const std::string& path);

}  // namespace pgmux::lifecycle
