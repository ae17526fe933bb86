// peerlink/log.hpp: the logging hook.
//
// peerlink never prints on its own: no global logger, nothing on stderr. Every object
// that logs holds a `logger`, a copy of the one the user configured, and calls it with
// a level, a component name ("kcp", "stun", "connection") and a message. A
// default-constructed logger has no hook and drops everything.
//
// @par Example
// @code
// peerlink::logger log(
//     [](peerlink::log_level level, std::string_view component, std::string_view message) {
//         std::clog << peerlink::to_string(level) << " [" << component << "] " << message << '\n';
//     },
//     peerlink::log_level::debug);
// if (log.enabled(peerlink::log_level::debug))          // skip formatting when nobody listens
//     log.log(peerlink::log_level::debug, "kcp", "rto " + std::to_string(rto_ms) + " ms");
// @endcode
#ifndef PEERLINK_LOG_HPP
#define PEERLINK_LOG_HPP

#include <functional>
#include <string_view>
#include <utility>

namespace peerlink {

/// Severity of a log message, from the most verbose to none.
enum class log_level {
    trace,   ///< Per-packet detail: every segment, every check. Costly.
    debug,   ///< State changes and decisions inside a module.
    info,    ///< Connection life: connected, path changed, closed.
    warning, ///< Something went wrong and was recovered from (a relay fallback, a dropped peer).
    error,   ///< An operation failed.
    off,     ///< As a minimum level: log nothing. Never passed to a hook.
};

/// The lowercase name of a level: "trace", "debug", "info", "warning", "error", "off".
constexpr std::string_view to_string(log_level level) noexcept {
    switch (level) {
    case log_level::trace:
        return "trace";
    case log_level::debug:
        return "debug";
    case log_level::info:
        return "info";
    case log_level::warning:
        return "warning";
    case log_level::error:
        return "error";
    case log_level::off:
        return "off";
    }
    return "unknown";
}

/// A user hook plus a minimum level.
///
/// The hook is called synchronously on the thread that logs (the thread running the
/// connection's executor). The `component` and `message` views are valid only during
/// the call; copy them to keep them. The hook must not throw.
class logger {
public:
    /// The hook's signature.
    using hook_type =
        std::function<void(log_level level, std::string_view component, std::string_view message)>;

    /// A logger without a hook: `enabled()` is always false and `log()` does nothing.
    logger() = default;

    /// A logger calling `hook` for every message at `min_level` or above.
    /// @param hook called for each message; an empty function logs nothing.
    /// @param min_level the lowest level passed on; `log_level::off` passes nothing.
    explicit logger(hook_type hook, log_level min_level = log_level::info)
        : hook_(std::move(hook)), min_level_(min_level) {}

    /// Replaces the hook; an empty function switches logging off.
    void set_hook(hook_type hook) { hook_ = std::move(hook); }

    /// Sets the lowest level passed on to the hook.
    void set_min_level(log_level level) noexcept { min_level_ = level; }

    /// The lowest level passed on to the hook.
    log_level min_level() const noexcept { return min_level_; }

    /// Whether a message at `level` would reach the hook. Check it before building an
    /// expensive message.
    bool enabled(log_level level) const noexcept {
        return hook_ && level != log_level::off && level >= min_level_;
    }

    /// Passes a message to the hook if `enabled(level)`; otherwise does nothing.
    /// @param level the message's severity; `log_level::off` is never passed on.
    /// @param component the module that logs, e.g. "kcp".
    /// @param message the text, without a trailing newline.
    void log(log_level level, std::string_view component, std::string_view message) const {
        if (enabled(level))
            hook_(level, component, message);
    }

private:
    hook_type hook_;
    log_level min_level_ = log_level::info;
};

} // namespace peerlink

#endif // PEERLINK_LOG_HPP
