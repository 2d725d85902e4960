// libFuzzer harness: the config loader on any text: a Config or a ConfigError, nothing else.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "pgmux/config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  // A fixed environment, so ${VAR} both resolves (APP) and fails (anything else) without reading the real
  // one.
  const pgmux::config::EnvLookup env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "APP") return std::string("app-password");
    return std::nullopt;
  };
  try {
    (void)pgmux::config::parse_config(text, env);
  } catch (const pgmux::config::ConfigError&) {
    // The one exception callers are promised; anything else escapes and libFuzzer reports it.
  }
  return 0;
}
