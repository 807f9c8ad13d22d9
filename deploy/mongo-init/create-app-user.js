// Creates Relance's own MongoDB user: readWrite on its database, nothing else. The mongo image
// runs this (with mongosh, as the root user) once, when it initialises an empty data volume;
// for an existing volume, run it by hand (docs/deployment.md, "Upgrading").
// The names come from the mongo container's environment (compose.yaml).
const user = process.env.MONGO_APP_USERNAME;
const pwd = process.env.MONGO_APP_PASSWORD;
const database = process.env.MONGO_APP_DATABASE || "relance";
if (!user || !pwd) {
  throw new Error("MONGO_APP_USERNAME and MONGO_APP_PASSWORD must be set");
}
const target = db.getSiblingDB(database);
if (target.getUser(user) === null) {
  target.createUser({ user: user, pwd: pwd, roles: [{ role: "readWrite", db: database }] });
  print(`created the MongoDB user ${user} (readWrite on ${database})`);
} else {
  // Same name already there: bring its password and role in line with the environment.
  target.updateUser(user, { pwd: pwd, roles: [{ role: "readWrite", db: database }] });
  print(`updated the MongoDB user ${user} (readWrite on ${database})`);
}
