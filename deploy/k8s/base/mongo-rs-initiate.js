// Initiates the MongoDB replica set once, then waits for a primary (idempotent: run it again at will).
// One script for both variants: the Kubernetes Job mongo-rs-init (mongo.yaml) and docker-compose's
// mongo-init (docker-compose.cluster.yml). Run by `mongosh --nodb --quiet <this file>` with:
//   RS_NAME     the replica set's name (rs0)
//   RS_MEMBERS  its members, host:port, comma-separated; the first one is asked to initiate
//   RS_TIMEOUT_SECONDS  give up after this long (default 300): the Job or compose retries
const name = process.env.RS_NAME || "rs0";
const members = (process.env.RS_MEMBERS || "").split(",").map((h) => h.trim()).filter((h) => h);
const deadline = Date.now() + 1000 * Number(process.env.RS_TIMEOUT_SECONDS || 300);
if (members.length === 0) {
  print("RS_MEMBERS is empty");
  quit(2);
}

// A command's reply, or {ok: 0, code, errmsg} when the server (or the connection) refused it.
function run(host, command) {
  let conn = null;
  try {
    conn = new Mongo(`mongodb://${host}/?directConnection=true&serverSelectionTimeoutMS=2000`);
    return conn.getDB("admin").runCommand(command);
  } catch (e) {
    return { ok: 0, code: e.code, codeName: e.codeName, errmsg: String(e.message || e) };
  } finally {
    try {
      if (conn) conn.close();
    } catch (e) {
      // already closed, or never connected
    }
  }
}

function waitFor(what, done) {
  for (;;) {
    const reply = done();
    if (reply) return reply;
    if (Date.now() > deadline) {
      print(`timed out waiting for ${what}`);
      quit(1);
    }
    sleep(1000);
  }
}

for (const host of members) {
  waitFor(`${host} to answer`, () => run(host, { ping: 1 }).ok);
  print(`${host} answers`);
}

const status = run(members[0], { replSetGetStatus: 1 });
if (status.ok) {
  print(`replica set ${status.set} already initiated`);
} else if (status.code === 94 /* NotYetInitialized */) {
  const config = { _id: name, members: members.map((host, i) => ({ _id: i, host })) };
  const reply = run(members[0], { replSetInitiate: config });
  if (!reply.ok && reply.code !== 23 /* AlreadyInitialized: another run got there first */) {
    print(`replSetInitiate failed: ${reply.errmsg}`);
    quit(1);
  }
  print(`replica set ${name} initiated with ${members.join(", ")}`);
} else {
  print(`replSetGetStatus failed: ${status.errmsg}`);
  quit(1);
}

const primary = waitFor("a primary", () => run(members[0], { hello: 1 }).primary);
print(`primary: ${primary}`);
