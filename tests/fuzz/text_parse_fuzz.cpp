// libFuzzer target: the text decoders users feed (peer ids, endpoints, JSON
// configuration) reject or accept any input with an error code, never a crash,
// and what they accept prints back to an equal value.
#include <peerlink/config.hpp>
#include <peerlink/endpoint.hpp>
#include <peerlink/identity.hpp>

#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    std::error_code ec;
    if (auto id = peerlink::peer_id::parse(text, ec)) {
        std::error_code ec2;
        if (peerlink::peer_id::parse(id->to_string(), ec2) != id)
            __builtin_trap();
    }
    if (auto ep = peerlink::endpoint::parse(text, ec)) {
        std::error_code ec2;
        if (peerlink::endpoint::parse(ep->to_string(), ec2) != ep)
            __builtin_trap();
    }
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_discarded()) {
        std::string what;
        if (auto cfg = peerlink::config_from_json(j, ec, &what)) {
            nlohmann::json again = *cfg;
            std::error_code ec2;
            if (peerlink::config_from_json(again, ec2) != cfg)
                __builtin_trap();
        }
    }
    return 0;
}
