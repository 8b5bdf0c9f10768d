// The page server.ts serves: the imports of the user named in the URL (?user=7).
import { createRoot } from "react-dom/client";
import { Imports } from "./Imports.tsx";

const root = document.getElementById("root");
if (root) createRoot(root).render(<Imports user={new URLSearchParams(location.search).get("user") ?? "7"} />);
