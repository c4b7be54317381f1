#include "worker/child_main.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <iterator>

#include "common/log.hpp"
#include "common/proctitle.hpp"
#include "shm/control.hpp"
#include "shm/mapping_guard.hpp"

namespace polymur {

void child_main(const Heritage& heritage, const std::string& name, std::span<const int> handled_signals) {
    // Nothing of the supervisor's event loop survives into the child.
    for (int sig : handled_signals) signal(sig, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != heritage.supervisor_pid) _exit(0);
    // Close every descriptor but the standard ones and those in the heritage.
    int keep[] = {heritage.listen_fd, heritage.https_fd, heritage.http_fd,
                  heritage.pickle_fd, heritage.udp_fd,   heritage.tls_fd};
    std::sort(std::begin(keep), std::end(keep));
    unsigned next = 3;
    for (int fd : keep) {
        if (fd < static_cast<int>(next)) continue;
        if (static_cast<unsigned>(fd) > next) close_range(next, static_cast<unsigned>(fd) - 1, 0);
        next = static_cast<unsigned>(fd) + 1;
    }
    close_range(next, ~0U, 0);
    if (!shm::control_is_valid(heritage.control)) {
        LOG_ERROR("%s: the control segment fails its layout check; not starting", name.c_str());
        _exit(kExitDoNotRestart);
    }
    std::string title = "polymur: " + name;
    proctitle_set(title.c_str());
    log::set_role(name.c_str());
    // A queue file truncated under the relay: its readers stop as at their next start; a listener goes on
    // serving every other destination (what it writes for that one is lost with the file).
    if (heritage.role == Role::listener)
        shm::guard_queue_mappings(shm::OnTruncatedQueue::keep_running, kExitDoNotRestart,
                                  "this listener carries on, and that destination's lines are lost from now on");
    else shm::guard_queue_mappings(shm::OnTruncatedQueue::exit_process, kExitDoNotRestart);
    int code = kExitCrashed;
    try {
        code = heritage.role == Role::listener ? run_listener(heritage)
            : heritage.role == Role::output    ? run_output(heritage)
                                               : run_aggregator(heritage);
    } catch (const std::exception& e) {
        LOG_ERROR("%s: stopped by an unexpected error: %s", name.c_str(), e.what());
    } catch (...) {
        LOG_ERROR("%s: stopped by an unexpected error", name.c_str());
    }
    _exit(code);
}

}  // namespace polymur
