// Boots the vendored GraphiQL (React and GraphiQL are globals from their UMD files).
// The Authorization header is prefilled with the console's token, or the demo token. Like the
// console, it never writes tokens to localStorage (GraphiQL's shouldPersistHeaders stays off).
const root = document.getElementById("graphiql");
const token = sessionStorage.getItem("incident-graph.token") || root.dataset.demoToken;

const EXAMPLE = `# incident-graph. Every request needs a token:
# the Headers tab below holds {"Authorization": "Bearer <token>"}.
# Run with Ctrl-Enter. The console for people is at /.
{
  viewer { name canViewIncidents }
  incidents(first: 5) {
    totalCount
    edges { node { id name severity status alertCount lastActivityAt } }
  }
}
`;

ReactDOM.createRoot(root).render(
  React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({ url: new URL("/graphql", location.href).href }),
    defaultQuery: EXAMPLE,
    headers: token ? JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2) : undefined,
    defaultEditorToolsVisibility: "headers",
    isHeadersEditorEnabled: true,
  }),
);
