// The exchange shape of transport (see worker/transport.hpp) for an https:// destination (a
// gateway; the proxy side of the HTTPS transport): the batch is gzipped straight from the ring
// memory and POSTed to <path>/ingest over TLS with this site's client certificate; it is confirmed
// only when the gateway answered 200 (it answers only after the lines are in its own queues).
// Anything else keeps the batch and sends the same bytes again.
#pragma once

#include <memory>
#include <string>

#include "common/config.hpp"
#include "common/destination_spec.hpp"
#include "worker/transport.hpp"

namespace polymur {

// nullptr with `error` when the destination or the TLS settings cannot work (a restart cannot fix them).
// `spec`: the destination as the supervisor parsed it.
std::unique_ptr<Transport> make_https_transport(OutputLink& link, const Config& config, const DestinationSpec& spec,
                                                std::string& error);

}  // namespace polymur
