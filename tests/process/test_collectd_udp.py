"""collectd's write_graphite over UDP (Protocol "udp") -> polymur's UDP listener -> a sink: a private
collectd whose python plugin dispatches a bounded burst of values, every one of which must arrive."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import RelayTestCase, terminate, wait_until

ROUNDS, PER_ROUND = 5, 300

PLUGIN = """import collectd
state = {{'round': 0}}


def read():
    if state['round'] >= {rounds}:
        return
    r = state['round']
    state['round'] += 1
    for i in range({per_round}):
        collectd.Values(plugin='burst', plugin_instance=str(i), type='gauge', values=[r * 1000 + i]).dispatch()
    if state['round'] == {rounds}:
        open({done!r}, 'w').close()


collectd.register_read(read)
"""

CONF = """Hostname "polymurtest"
FQDNLookup false
Interval 0.2
BaseDir "{root}"
PIDFile "{root}/collectd.pid"
TypesDB "/usr/share/collectd/types.db"
AutoLoadPlugin false
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "{root}/collectd.log"
</Plugin>
<LoadPlugin python>
  Globals true
</LoadPlugin>
<Plugin python>
  ModulePath "{root}"
  Import "burst"
</Plugin>
LoadPlugin write_graphite
<Plugin write_graphite>
  <Node "polymur">
    Host "127.0.0.1"
    Port "{port}"
    Protocol "udp"
    Prefix "collectd."
    StoreRates false
    AlwaysAppendDS false
    SeparateInstances false
  </Node>
</Plugin>
"""

COLLECTD = shutil.which("collectd") or "/usr/sbin/collectd"


@unittest.skipUnless(os.path.exists(COLLECTD) and os.path.exists("/usr/lib/collectd/write_graphite.so"),
                     "needs collectd-core (./dev.sh test installs it)")
class CollectdUdpTest(RelayTestCase):
    def test_every_value_collectd_sends_over_udp_arrives(self):
        out = self.sink()
        relay = self.relay("--udp-listen-addr=127.0.0.1:0", destinations=[out.address])
        port = relay.bound_port("UDP")
        root = tempfile.mkdtemp(prefix="polymur-collectd-")
        self.addCleanup(shutil.rmtree, root, True)
        done = os.path.join(root, "done")
        with open(os.path.join(root, "burst.py"), "w") as f:
            f.write(PLUGIN.format(rounds=ROUNDS, per_round=PER_ROUND, done=done))
        conf = os.path.join(root, "collectd.conf")
        with open(conf, "w") as f:
            f.write(CONF.format(root=root, port=port))
        proc = subprocess.Popen([COLLECTD, "-f", "-C", conf], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        self.addCleanup(terminate, proc, 20)
        wait_until(lambda: os.path.exists(done), 60, message="collectd's burst dispatched")
        terminate(proc, 20)  # write_graphite sends what it still buffers on shutdown
        wait_until(lambda: out.line_count() >= ROUNDS * PER_ROUND, 30,
                   message="every value (log: %s)" % os.path.join(root, "collectd.log"))
        lines = out.lines()
        self.assertEqual(len(lines), ROUNDS * PER_ROUND)
        got = sorted((line.split()[0], float(line.split()[1])) for line in lines)
        want = sorted(("collectd.polymurtest.burst-%d.gauge" % i, float(r * 1000 + i))
                      for r in range(ROUNDS) for i in range(PER_ROUND))
        self.assertEqual(got, want)
        stats = relay.stats()
        self.assertEqual(stats["invalid"], 0)
        self.assertGreater(stats["udp_datagrams"], 0)


if __name__ == "__main__":
    unittest.main()
