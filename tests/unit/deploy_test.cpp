// The deploy/ files that cannot run here (no Docker engine, no cluster, no AWS) are read and checked against
// pgmux's real config keys, ports and build script.
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "lifecycle/fd_limit.hpp"
#include "pgmux/config/config.hpp"
#include "session/proxy.hpp"

using namespace pgmux;

namespace {

const std::filesystem::path kDeploy = std::filesystem::path(PGMUX_SOURCE_DIR) / "deploy";

std::string read(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every ${VAR} gets a value of the right shape for where it is used.
std::optional<std::string> placeholder(const std::string& name) {
  if (name == "PGMUX_DB_PORT") return "5432";
  if (name == "PGMUX_POOL_SIZE" || name == "PGMUX_WORKERS") return "2";
  if (name == "PGMUX_MAX_CLIENT_CONN") return "1000";
  if (name == "PGMUX_LOG_FORMAT") return "json";
  return "value-of-" + name;
}

// Parsed as pgmux would at start: keys, types, ranges and the secrets.
config::Config validated(const std::string& yaml) {
  config::Config config = config::parse_config(yaml, placeholder);
  session::Proxy proxy(config);
  return config;
}

// Whether `word` appears delimited by spaces, line ends or parentheses (a package in a shell list).
bool lists(const std::string& text, const std::string& word) {
  return std::regex_search(text, std::regex("(^|[\\s(])" + word + "([\\s)]|$)"));
}

YAML::Node find_container(const YAML::Node& deployment) {
  for (const auto& c : deployment["spec"]["template"]["spec"]["containers"])
    if (c["name"].as<std::string>() == "pgmux") return c;
  FAIL("no pgmux container");
  return {};
}

int named_port(const YAML::Node& container, const std::string& name) {
  for (const auto& p : container["ports"])
    if (p["name"].as<std::string>() == name) return p["containerPort"].as<int>();
  return -1;
}

}  // namespace

TEST_CASE("the Kubernetes manifests parse and agree with the pgmux config in their ConfigMap", "[deploy]") {
  const auto dir = kDeploy / "kubernetes";
  YAML::Node kustomization = YAML::LoadFile(dir / "kustomization.yaml");
  std::set<std::string> kinds;
  for (const auto& resource : kustomization["resources"]) {
    YAML::Node doc = YAML::LoadFile(dir / resource.as<std::string>());
    kinds.insert(doc["kind"].as<std::string>());
    CHECK(doc["metadata"]["name"].as<std::string>() == "pgmux");
  }
  CHECK(kinds == std::set<std::string>{"ConfigMap", "Secret", "Deployment", "Service",
                                       "HorizontalPodAutoscaler", "PodDisruptionBudget"});

  config::Config config =
      validated(YAML::LoadFile(dir / "configmap.yaml")["data"]["pgmux.yaml"].as<std::string>());
  REQUIRE(config.listen.http);
  YAML::Node deployment = YAML::LoadFile(dir / "deployment.yaml");
  YAML::Node container = find_container(deployment);
  CHECK(named_port(container, "postgres") == config.listen.postgres.port);
  CHECK(named_port(container, "http") == config.listen.http->port);
  CHECK(container["readinessProbe"]["httpGet"]["path"].as<std::string>() == "/readyz");
  CHECK(container["readinessProbe"]["httpGet"]["port"].as<std::string>() == "http");
  CHECK(container["livenessProbe"]["httpGet"]["path"].as<std::string>() == "/healthz");
  CHECK(container["livenessProbe"]["httpGet"]["port"].as<std::string>() == "http");
  CHECK(container["args"][1].as<std::string>() ==
        container["volumeMounts"][0]["mountPath"].as<std::string>() + "/pgmux.yaml");
  // The secret provides every variable the config reads.
  YAML::Node secret = YAML::LoadFile(dir / "secret.yaml");
  CHECK(secret["stringData"]["APP_PASSWORD"]);
  // Kubernetes kills after the grace period: the drain must fit in it.
  const auto& pod = deployment["spec"]["template"];
  CHECK(pod["spec"]["terminationGracePeriodSeconds"].as<int>() * 1000 >
        config.shutdown_timeout.count() + 5000);
  CHECK(pod["metadata"]["annotations"]["prometheus.io/scrape"].as<std::string>() == "true");
  CHECK(pod["metadata"]["annotations"]["prometheus.io/port"].as<int>() == config.listen.http->port);
  CHECK(pod["metadata"]["annotations"]["prometheus.io/path"].as<std::string>() == "/metrics");
  CHECK(config.workers == container["resources"]["limits"]["cpu"].as<int>());

  YAML::Node service = YAML::LoadFile(dir / "service.yaml");
  std::set<std::string> targets;
  for (const auto& p : service["spec"]["ports"]) targets.insert(p["targetPort"].as<std::string>());
  CHECK(targets == std::set<std::string>{"postgres", "http"});

  // The file-descriptor need of one replica fits the image's usual limits.
  CHECK(lifecycle::descriptors_needed(config, config.workers) < 20000);
}

TEST_CASE("the container image's config, Dockerfile and compose file agree", "[deploy]") {
  config::Config config = validated(read(kDeploy / "docker" / "pgmux.yaml"));
  REQUIRE(config.listen.http);
  const std::string dockerfile = read(kDeploy / "Dockerfile");
  CHECK(dockerfile.find("FROM debian:bookworm AS build") != std::string::npos);
  CHECK(dockerfile.find("FROM debian:bookworm-slim") != std::string::npos);
  CHECK(std::regex_search(dockerfile, std::regex(R"(\nUSER [1-9][0-9]*\n)")));
  CHECK(dockerfile.find("EXPOSE " + std::to_string(config.listen.postgres.port) + " " +
                        std::to_string(config.listen.http->port)) != std::string::npos);
  CHECK(dockerfile.find("/dev/tcp/127.0.0.1/" + std::to_string(config.listen.http->port)) !=
        std::string::npos);
  CHECK(dockerfile.find("GET /healthz") != std::string::npos);

  // The image is built by the very script CI runs, with the build packages deploy/install-deps.sh installs.
  CHECK(std::regex_search(dockerfile, std::regex(R"(\nRUN [^\n]*\./deploy/build\.sh)")));
  const std::string install = read(kDeploy / "install-deps.sh");
  for (const char* package : {"build-essential", "cmake", "pkg-config", "libboost1.81-dev",
                              "libboost-json1.81-dev", "libboost-url1.81-dev", "libssl-dev",
                              "libyaml-cpp-dev", "prometheus-cpp-dev", "catch2", "libpq-dev"}) {
    INFO(package);
    CHECK(lists(install, package));
    CHECK(lists(dockerfile, package));
  }
  // Every variable the config reads without a default in the image is set by compose.
  YAML::Node compose = YAML::LoadFile(kDeploy / "compose.yaml");
  YAML::Node pgmux = compose["services"]["pgmux"];
  for (const char* required : {"PGMUX_DB_HOST", "PGMUX_USER", "PGMUX_PASSWORD"}) {
    INFO(required);
    CHECK(pgmux["environment"][required]);
    CHECK(dockerfile.find(std::string(required) + "=") == std::string::npos);
  }
  CHECK(pgmux["build"]["dockerfile"].as<std::string>() == "deploy/Dockerfile");
  CHECK(pgmux["ports"][0].as<std::string>() == "6432:6432");
  CHECK(pgmux["ports"][1].as<std::string>() == "8080:8080");
  CHECK(compose["services"]["postgres"]["image"].as<std::string>().starts_with("postgres:15"));
}

TEST_CASE("the AWS template parses and routes the NLB to pgmux's ports and /readyz", "[deploy]") {
  YAML::Node stack = YAML::LoadFile(kDeploy / "aws" / "pgmux-fargate.yaml");  // !Ref etc. are plain tags
  const YAML::Node resources = stack["Resources"];
  CHECK(resources["LoadBalancer"]["Properties"]["Type"].as<std::string>() == "network");
  CHECK(resources["LoadBalancer"]["Properties"]["Scheme"].as<std::string>() == "internal");
  std::set<int> container_ports;
  for (const auto& p : resources["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["PortMappings"])
    container_ports.insert(p["ContainerPort"].as<int>());
  CHECK(container_ports == std::set<int>{6432, 8080});
  for (const char* group : {"PostgresTargets", "HttpTargets"}) {
    INFO(group);
    CHECK(resources[group]["Properties"]["HealthCheckPath"].as<std::string>() == "/readyz");
    CHECK(resources[group]["Properties"]["HealthCheckPort"].as<std::string>() == "8080");
    CHECK(resources[group]["Properties"]["TargetType"].as<std::string>() == "ip");
  }
  CHECK(resources["PostgresTargets"]["Properties"]["Port"].as<int>() == 6432);
  CHECK(resources["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]["StopTimeout"].as<int>() > 30);
  CHECK(stack["Outputs"]["DatabaseUrl"]);
  CHECK(stack["Outputs"]["HttpEndpoint"]);
}

TEST_CASE("the systemd unit reloads with SIGHUP, drains on stop and is sandboxed", "[deploy]") {
  const std::string unit = read(kDeploy / "systemd" / "pgmux@.service");
  CHECK(unit.find("ExecStart=/usr/local/bin/pgmux --config /etc/pgmux/pgmux.yaml --takeover") !=
        std::string::npos);
  CHECK(unit.find("ExecReload=/bin/kill -HUP $MAINPID") != std::string::npos);
  CHECK(unit.find("KillSignal=SIGTERM") != std::string::npos);
  std::smatch stop;
  REQUIRE(std::regex_search(unit, stop, std::regex(R"(TimeoutStopSec=([0-9]+))")));
  CHECK(std::stoi(stop[1]) > 30);  // the default shutdown_timeout
  for (const char* option : {"NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                             "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet="}) {
    INFO(option);
    CHECK(unit.find(option) != std::string::npos);
  }
}
