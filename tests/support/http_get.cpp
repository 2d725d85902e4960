// A minimal HTTP client for tests of pgmux's HTTP listener.
#include "http_get.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pgmux::test {

GetReply http_get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  GetReply reply;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return reply;
  }
  std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  send(fd, request.data(), request.size(), 0);
  std::string all;
  char chunk[8192];
  for (ssize_t n; (n = recv(fd, chunk, sizeof chunk, 0)) > 0;) all.append(chunk, n);
  close(fd);
  if (all.size() > 12) reply.status = std::stoi(all.substr(9, 3));
  if (auto body = all.find("\r\n\r\n"); body != std::string::npos) reply.body = all.substr(body + 4);
  return reply;
}

double sample(const std::string& page, const std::string& series) {
  auto at = page.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(page.substr(at + series.size() + 2));
}

}  // namespace pgmux::test
